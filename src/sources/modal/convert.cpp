#include "sources/modal/convert.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>

#include "rpc_status.pb.h"
#include "sources/modal/decimal.h"

namespace mx::modal_convert {
namespace {

constexpr std::size_t kExampleChars = 40;

std::optional<double> positive_or_none(double v) {
  if (v > 0 && std::isfinite(v)) return v;
  return std::nullopt;
}

double to_unix(const pb::Timestamp& ts) {
  return static_cast<double>(ts.seconds()) + static_cast<double>(ts.nanos()) / 1e9;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

void note(Issues& issues, DecimalStatus status, const std::string& value) {
  if (status == DecimalStatus::not_finite) {
    ++issues.not_finite;
  } else {
    ++issues.malformed;
  }
  if (issues.example.empty()) issues.example = value.substr(0, kExampleChars);
}

// A map of name -> Decimal string (a cost split by resource or by category) into `out`: an
// entry without a name or whose value is not a finite decimal is dropped and counted.
template <typename Out>
void add_decimal_parts(const google::protobuf::Map<std::string, std::string>& parts, Out& out,
                       Issues& issues) {
  for (const auto& [name, value] : parts) {
    const auto part = parse_decimal_usd(value);
    if (name.empty() || part.status != DecimalStatus::ok) {
      note(issues, name.empty() ? DecimalStatus::malformed : part.status, value);
      continue;
    }
    out[name] = part.value;
  }
}

}  // namespace

std::vector<ModalApp> apps(const pb::AppListResponse& response, Issues& issues) {
  std::vector<ModalApp> out;
  out.reserve(static_cast<std::size_t>(response.apps_size()));
  for (const auto& item : response.apps()) {
    if (item.app_id().empty()) {
      ++issues.malformed;
      continue;
    }
    ModalApp app;
    app.app_id = item.app_id();
    app.name = item.name();
    app.description = item.description();
    app.state = static_cast<int>(item.state());
    app.running_tasks = std::max(0, item.n_running_tasks());
    app.created_at = positive_or_none(item.created_at());
    app.stopped_at = positive_or_none(item.stopped_at());
    out.push_back(std::move(app));
  }
  return out;
}

std::map<std::string, std::vector<ModalTask>> tasks_by_app(
    const pb::TaskListResponse& response, const std::string& requested_app_id,
    const std::vector<std::string>& want_apps, Issues& issues) {
  std::map<std::string, std::vector<ModalTask>> out;
  for (const auto& id : want_apps) out[id];
  for (const auto& item : response.tasks()) {
    const std::string& app_id = item.app_id().empty() ? requested_app_id : item.app_id();
    if (item.task_id().empty() || app_id.empty()) {
      ++issues.malformed;
      continue;
    }
    // A server that ignores TaskListRequest.app_id lists every app's tasks: keep only what was
    // asked for.
    if (!requested_app_id.empty() && app_id != requested_app_id) continue;
    auto it = out.find(app_id);
    if (it == out.end()) continue;
    ModalTask task;
    task.task_id = item.task_id();
    task.app_id = app_id;
    task.enqueued_at = positive_or_none(item.enqueued_at());
    task.started_at = positive_or_none(item.started_at());
    it->second.push_back(std::move(task));
  }
  return out;
}

ModalTaskInfo task_info(const pb::TaskGetInfoResponse& response, const std::string& task_id) {
  const auto& in = response.info();
  ModalTaskInfo info;
  info.task_id = in.id().empty() ? task_id : in.id();
  info.app_id = response.app_id();
  info.enqueued_at = positive_or_none(in.enqueued_at());
  info.started_at = positive_or_none(in.started_at());
  info.finished_at = positive_or_none(in.finished_at());
  info.gpu_type = in.gpu_config().gpu_type().empty() ? in.gpu_type() : in.gpu_config().gpu_type();
  info.gpu_count = in.gpu_config().count();
  if (info.gpu_count == 0 && !info.gpu_type.empty()) info.gpu_count = 1;
  info.result_status = static_cast<int>(in.result().status());
  return info;
}

ModalFunctionStats function_stats(const pb::FunctionStats& response,
                                  const std::string& function_id) {
  ModalFunctionStats stats;
  stats.function_id = function_id;
  stats.backlog = response.backlog();
  stats.num_total_tasks = response.num_total_tasks();
  stats.num_running_inputs = response.num_running_inputs();
  return stats;
}

Rates rates(const pb::WorkspaceBillingRatesResponse& response, Issues& issues) {
  Rates out;
  for (const auto& [key, value] : response.rates()) {
    if (response.deprecation_warnings().contains(key) ||
        response.deprecation_errors().contains(key)) {
      out.deprecated.push_back(key);
      continue;
    }
    const auto parsed = parse_decimal_usd(value);
    if (key.empty() || parsed.status != DecimalStatus::ok) {
      note(issues, key.empty() ? DecimalStatus::malformed : parsed.status, value);
      continue;
    }
    out.rates.per_hour[lower(key)] = parsed.value;
  }
  std::sort(out.deprecated.begin(), out.deprecated.end());
  return out;
}

void add_billing_item(const pb::WorkspaceBillingReportItem& item, BillingReport& report,
                      Issues& issues) {
  const auto cost = parse_decimal_usd(item.cost());
  if (item.object_id().empty() || !item.has_interval()) {
    note(issues, DecimalStatus::malformed, item.cost());
    return;
  }
  if (cost.status != DecimalStatus::ok) {
    note(issues, cost.status, item.cost());
    return;
  }
  BillingItem out{item.object_id(), to_unix(item.interval()), cost.value, {}};
  out.cost_by_resource.reserve(item.cost_by_resource().size());
  add_decimal_parts(item.cost_by_resource(), out.cost_by_resource, issues);
  report.items.push_back(std::move(out));
}

std::vector<ModalEnvironment> environments(const pb::EnvironmentListResponse& response,
                                           Issues& issues) {
  std::vector<ModalEnvironment> out;
  out.reserve(static_cast<std::size_t>(response.items_size()));
  auto amount = [&issues](double v) -> std::optional<double> {
    if (std::isfinite(v)) return v;
    ++issues.not_finite;
    if (issues.example.empty()) issues.example = std::to_string(v);
    return std::nullopt;
  };
  for (const auto& item : response.items()) {
    if (item.name().empty()) {
      ++issues.malformed;
      continue;
    }
    ModalEnvironment e;
    e.name = item.name();
    e.environment_id = item.environment_id();
    e.is_default = item.default_();
    e.managed = item.is_managed();
    if (item.has_max_concurrent_tasks()) e.max_concurrent_tasks = item.max_concurrent_tasks();
    if (item.has_max_concurrent_gpus()) e.max_concurrent_gpus = item.max_concurrent_gpus();
    e.concurrent_tasks = std::max(0, item.current_concurrent_tasks());
    e.concurrent_gpus = std::max(0, item.current_concurrent_gpus());
    if (item.has_cycle_budget_dollars()) e.cycle_budget_usd = amount(item.cycle_budget_dollars());
    e.cycle_spend_limit_usd = amount(item.effective_cycle_spend_limit());
    e.cycle_spend_usd = amount(item.current_cycle_usage());
    e.spend_limit_reached = item.spend_limit_reached();
    out.push_back(std::move(e));
  }
  return out;
}

EnvironmentCost environment_cost(const pb::EnvironmentBillingSummaryResponse& response,
                                 Issues& issues) {
  EnvironmentCost cost;
  if (!response.metered_cost().empty()) {
    const auto total = parse_decimal_usd(response.metered_cost());
    if (total.status == DecimalStatus::ok) {
      cost.total = total.value;
    } else {
      note(issues, total.status, response.metered_cost());
    }
  }
  add_decimal_parts(response.metered_cost_breakdown(), cost.by_category, issues);
  return cost;
}

std::int64_t month_start(std::int64_t unix_seconds) {
  using namespace std::chrono;
  const year_month_day day{floor<days>(sys_seconds{seconds{unix_seconds}})};
  return duration_cast<seconds>(sys_days{day.year() / day.month() / 1}.time_since_epoch()).count();
}

namespace {

// An Any's type URL ends in "/" and the full name of the message it holds (what Any::Is checks
// in the full runtime).
bool is_any_of(const ::mx::rpc::Any& any, std::string_view full_name) {
  const std::string_view url = any.type_url();
  return url.size() > full_name.size() && url.ends_with(full_name) &&
         url[url.size() - full_name.size() - 1] == '/';
}

}  // namespace

std::optional<double> retry_after_seconds(const grpc::Status& status) {
  if (status.error_details().empty()) return std::nullopt;
  ::mx::rpc::StatusDetails details;
  if (!details.ParseFromString(status.error_details())) return std::nullopt;
  const std::string policy_type = pb::RPCRetryPolicy::default_instance().GetTypeName();
  for (const auto& any : details.details()) {
    pb::RPCRetryPolicy policy;
    if (!is_any_of(any, policy_type) || !policy.ParseFromString(any.value())) continue;
    const double secs = policy.retry_after_secs();
    if (std::isfinite(secs) && secs > 0) return secs;
    return std::nullopt;  // the first instruction counts, as in Modal's client
  }
  return std::nullopt;
}

}  // namespace mx::modal_convert
