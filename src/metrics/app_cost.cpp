#include "metrics/app_cost.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "exposition/text_format.h"

namespace mx {
namespace {

constexpr double kNanoPerUsd = 1e9;
constexpr double kDay = 86400, kHour = 3600;

double day_start(double now) {
  return std::floor(now / kDay) * kDay;
}

const std::vector<BillingItem>* rows(const std::optional<Model::BillingByApp>& report,
                                     const std::string& app_id) {
  if (!report) return nullptr;
  auto it = report->find(app_id);
  return it == report->end() ? nullptr : &it->second;
}

// Today's billed rows of one app: the "d" row(s) when present, else the "h" rows.
struct Today {
  std::vector<const BillingItem*> items;
  double covered_until = 0;  // end of the last reported interval (>= the day's start)
};

Today today_rows(const Model& model, const std::string& app_id) {
  const double start = day_start(model.now());
  Today out;
  out.covered_until = start;
  if (const auto* daily = rows(model.billing_daily(), app_id)) {
    for (const auto& item : *daily) {
      if (item.interval_start < start) continue;
      out.items.push_back(&item);
      out.covered_until = std::max(out.covered_until, item.interval_start + kDay);
    }
  }
  if (!out.items.empty()) return out;
  if (const auto* hourly = rows(model.billing_hourly(), app_id)) {
    for (const auto& item : *hourly) {
      if (item.interval_start < start) continue;
      out.items.push_back(&item);
      out.covered_until = std::max(out.covered_until, item.interval_start + kHour);
    }
  }
  return out;
}

}  // namespace

std::optional<double> job_cost_today(const Model& model, const JobObject& job, double hourly,
                                     std::optional<double> started, bool running) {
  if (job.modal_app_id.empty()) return std::nullopt;
  if (!model.billing_daily() && !model.billing_hourly()) return std::nullopt;
  const double now = model.now();
  const Today today = today_rows(model, job.modal_app_id);
  NanoUsd billed = 0;
  for (const auto* item : today.items) billed += item->cost;
  double estimate = 0;
  if (started) {
    const double end = job.finished_at ? *job.finished_at : (running ? now : *started);
    const double from = std::max(*started, today.covered_until);
    const double to = std::min(end, now);
    if (to > from) estimate = hourly * (to - from) / kHour;
  }
  const bool has_rows = rows(model.billing_daily(), job.modal_app_id) != nullptr ||
                        rows(model.billing_hourly(), job.modal_app_id) != nullptr;
  if (!has_rows && estimate <= 0) return std::nullopt;  // Modal knows nothing of the app yet
  return static_cast<double>(billed) / kNanoPerUsd + estimate;
}

const FamilyDesc& AppCostFamily::desc() {
  static const FamilyDesc desc{
      "modal_app_cost_usd",
      "USD billed for each Modal app of a known job, split by resource (GPU types, CPU, memory "
      "as Modal names them): today so far (daily) and within the billing window (total).",
      MetricType::gauge};
  return desc;
}

AppCostFamily::AppCostFamily(FamilySet& families)
    : set_(families), family_(families.add_family(desc())) {}

void AppCostFamily::render(const Model& model) {
  // app id -> resource -> (daily, total)
  std::map<std::string, std::map<std::string, std::pair<NanoUsd, NanoUsd>>> costs;
  const double start = day_start(model.now());
  std::set<std::string> apps;
  if (model.billing_daily()) {
    for (const auto& [app, items] : *model.billing_daily()) apps.insert(app);
  }
  if (model.billing_hourly()) {
    for (const auto& [app, items] : *model.billing_hourly()) apps.insert(app);
  }
  for (const auto& app : apps) {
    auto& by_resource = costs[app];
    // Past days from the "d" report, today from whichever report covers it.
    if (const auto* daily = rows(model.billing_daily(), app)) {
      for (const auto& item : *daily) {
        if (item.interval_start >= start) continue;
        for (const auto& [resource, cost] : item.cost_by_resource) {
          by_resource[resource].second += cost;
        }
      }
    }
    for (const auto* item : today_rows(model, app).items) {
      for (const auto& [resource, cost] : item->cost_by_resource) {
        by_resource[resource].first += cost;
        by_resource[resource].second += cost;
      }
    }
  }
  std::string out;
  const std::string& name = desc().name;
  for (const auto& [app, by_resource] : costs) {
    for (const auto& [resource, cost] : by_resource) {
      for (const auto& [period, usd] :
           {std::pair{"daily", cost.first}, std::pair{"total", cost.second}}) {
        append_sample(out, name, {{"app_id", app}, {"resource", resource}, {"time_period", period}},
                      static_cast<double>(usd) / kNanoPerUsd);
      }
    }
  }
  set_.set(family_, "", std::move(out));
}

}  // namespace mx
