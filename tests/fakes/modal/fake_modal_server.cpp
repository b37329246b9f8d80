#include "fake_modal_server.h"

#include <set>
#include <stdexcept>
#include <utility>

#include "common/base64.h"
#include "rpc_status.pb.h"

namespace mx::testing {
namespace {

using SystemClock = std::chrono::system_clock;
constexpr std::size_t kMaxRecordedCalls = 20000;

std::string metadata_value(const grpc::ServerContext* ctx, const std::string& key) {
  const auto& md = ctx->client_metadata();
  auto it = md.find(key);
  if (it == md.end()) return {};
  return std::string(it->second.data(), it->second.size());
}

bool in_window(const modal_pb::WorkspaceBillingReportRequest& request,
               const modal_pb::WorkspaceBillingReportItem& item, bool exclude_partial) {
  if (!item.has_interval()) return true;
  const auto at = item.interval().seconds();
  const std::int64_t length = request.resolution() == "h" ? 3600 : 86400;
  if (request.has_start_timestamp() && at < request.start_timestamp().seconds()) return false;
  if (request.has_end_timestamp()) {
    const auto end = request.end_timestamp().seconds();
    if (at >= end) return false;
    if (exclude_partial && at + length > end) return false;
  }
  return true;
}

grpc::Status fault_status(grpc::StatusCode code, std::optional<double> retry_after_secs) {
  if (!retry_after_secs) return {code, "injected fault"};
  modal_pb::RPCRetryPolicy policy;
  policy.set_retry_after_secs(static_cast<float>(*retry_after_secs));
  ::mx::rpc::StatusDetails details;
  details.set_code(static_cast<int>(code));
  details.set_message("injected fault");
  *details.add_details() = pack_any(policy);
  return {code, "injected fault", details.SerializeAsString()};
}

}  // namespace

::mx::rpc::Any pack_any(const google::protobuf::MessageLite& message) {
  ::mx::rpc::Any any;
  any.set_type_url("type.googleapis.com/" + message.GetTypeName());
  any.set_value(message.SerializeAsString());
  return any;
}

class FakeModalServer::Service final : public modal_pb::ModalClient::Service {
 public:
  explicit Service(FakeModalServer& owner) : owner_(owner) {}

  grpc::Status AuthTokenGet(grpc::ServerContext* ctx, const modal_pb::AuthTokenGetRequest* request,
                            modal_pb::AuthTokenGetResponse* response) override {
    if (auto status = owner_.admit(ctx, "AuthTokenGet", *request); !status.ok()) return status;
    std::lock_guard lock(owner_.mutex_);
    if (!owner_.auth_token_enabled_) {
      return {grpc::StatusCode::UNIMPLEMENTED, "AuthTokenGet is not implemented"};
    }
    if (owner_.token_.empty() || SystemClock::now() >= owner_.token_exp_) {
      owner_.mint_token_locked();
    }
    response->set_token(owner_.token_);
    return grpc::Status::OK;
  }

  grpc::Status AppList(grpc::ServerContext* ctx, const modal_pb::AppListRequest* request,
                       modal_pb::AppListResponse* response) override {
    if (auto status = owner_.admit(ctx, "AppList", *request); !status.ok()) return status;
    std::lock_guard lock(owner_.mutex_);
    for (const auto& app : owner_.apps_) *response->add_apps() = app;
    return grpc::Status::OK;
  }

  grpc::Status TaskList(grpc::ServerContext* ctx, const modal_pb::TaskListRequest* request,
                        modal_pb::TaskListResponse* response) override {
    if (auto status = owner_.admit(ctx, "TaskList", *request); !status.ok()) return status;
    std::lock_guard lock(owner_.mutex_);
    if (request->app_id().empty()) {
      if (owner_.task_list_requires_app_) {
        return {grpc::StatusCode::INVALID_ARGUMENT, "app_id is required"};
      }
      // The environment-wide form: every running task, each naming its app.
      for (const auto& [app_id, tasks] : owner_.tasks_) {
        for (const auto& task : tasks) {
          auto* out = response->add_tasks();
          *out = task;
          if (out->app_id().empty()) out->set_app_id(app_id);
        }
      }
      return grpc::Status::OK;
    }
    auto it = owner_.tasks_.find(request->app_id());
    if (it != owner_.tasks_.end()) {
      for (const auto& task : it->second) *response->add_tasks() = task;
    }
    return grpc::Status::OK;
  }

  grpc::Status TaskGetInfo(grpc::ServerContext* ctx, const modal_pb::TaskGetInfoRequest* request,
                           modal_pb::TaskGetInfoResponse* response) override {
    if (auto status = owner_.admit(ctx, "TaskGetInfo", *request); !status.ok()) return status;
    std::lock_guard lock(owner_.mutex_);
    auto it = owner_.task_info_.find(request->task_id());
    if (it == owner_.task_info_.end()) return {grpc::StatusCode::NOT_FOUND, "no such task"};
    *response = it->second;
    return grpc::Status::OK;
  }

  grpc::Status FunctionGetCurrentStats(grpc::ServerContext* ctx,
                                       const modal_pb::FunctionGetCurrentStatsRequest* request,
                                       modal_pb::FunctionStats* response) override {
    if (auto status = owner_.admit(ctx, "FunctionGetCurrentStats", *request); !status.ok()) {
      return status;
    }
    std::lock_guard lock(owner_.mutex_);
    auto it = owner_.function_stats_.find(request->function_id());
    if (it == owner_.function_stats_.end()) {
      return {grpc::StatusCode::NOT_FOUND, "no such function"};
    }
    *response = it->second;
    return grpc::Status::OK;
  }

  grpc::Status WorkspaceBillingReport(
      grpc::ServerContext* ctx, const modal_pb::WorkspaceBillingReportRequest* request,
      grpc::ServerWriter<modal_pb::WorkspaceBillingReportItem>* writer) override {
    if (auto status = owner_.admit(ctx, "WorkspaceBillingReport", *request); !status.ok()) {
      return status;
    }
    std::vector<modal_pb::WorkspaceBillingReportItem> items;
    std::optional<int> abort_after;
    {
      std::lock_guard lock(owner_.mutex_);
      owner_.billing_requests_.push_back(*request);
      if (owner_.billing_requests_.size() > kMaxRecordedCalls) {
        owner_.billing_requests_.erase(owner_.billing_requests_.begin());
      }
      abort_after = owner_.billing_abort_after_;
      auto it = owner_.billing_.find(request->resolution());
      if (it != owner_.billing_.end()) {
        std::set<std::string> wanted(request->app_ids().begin(), request->app_ids().end());
        for (const auto& item : it->second) {
          if (!wanted.empty() && !wanted.contains(item.object_id())) continue;
          if (!in_window(*request, item, owner_.exclude_partial_intervals_)) continue;
          items.push_back(item);
        }
      }
    }
    int sent = 0;
    for (const auto& item : items) {
      if (abort_after && sent >= *abort_after) break;
      if (!writer->Write(item)) return {grpc::StatusCode::CANCELLED, "client went away"};
      ++sent;
    }
    if (abort_after) return {grpc::StatusCode::UNAVAILABLE, "billing stream broken (injected)"};
    return grpc::Status::OK;
  }

  grpc::Status WorkspaceBillingRates(grpc::ServerContext* ctx,
                                     const modal_pb::WorkspaceBillingRatesRequest* request,
                                     modal_pb::WorkspaceBillingRatesResponse* response) override {
    if (auto status = owner_.admit(ctx, "WorkspaceBillingRates", *request); !status.ok()) {
      return status;
    }
    std::lock_guard lock(owner_.mutex_);
    std::string formatted;
    for (const auto& [key, value] : owner_.rates_) {
      (*response->mutable_rates())[key] = value;
      formatted += key + ": " + value + "\n";
    }
    for (const auto& [key, message] : owner_.rate_warnings_) {
      (*response->mutable_deprecation_warnings())[key] = message;
    }
    for (const auto& [key, message] : owner_.rate_errors_) {
      (*response->mutable_deprecation_errors())[key] = message;
    }
    response->set_formatted(formatted);
    return grpc::Status::OK;
  }

  grpc::Status EnvironmentList(grpc::ServerContext* ctx, const modal_pb::Empty* request,
                               modal_pb::EnvironmentListResponse* response) override {
    if (auto status = owner_.admit(ctx, "EnvironmentList", *request); !status.ok()) return status;
    std::lock_guard lock(owner_.mutex_);
    for (const auto& item : owner_.environments_) *response->add_items() = item;
    return grpc::Status::OK;
  }

  grpc::Status EnvironmentBillingSummary(
      grpc::ServerContext* ctx, const modal_pb::EnvironmentBillingSummaryRequest* request,
      modal_pb::EnvironmentBillingSummaryResponse* response) override {
    if (auto status = owner_.admit(ctx, "EnvironmentBillingSummary", *request); !status.ok()) {
      return status;
    }
    std::lock_guard lock(owner_.mutex_);
    const auto& id = request->environment_id();
    if (auto it = owner_.environment_billing_refused_.find(id);
        it != owner_.environment_billing_refused_.end()) {
      return {it->second, "not allowed to see this environment's billing"};
    }
    auto it = owner_.environment_billing_.find(id);
    if (it == owner_.environment_billing_.end())
      return {grpc::StatusCode::NOT_FOUND, "no such environment"};
    *response = it->second;
    *response->mutable_start_timestamp() = request->start_timestamp();
    return grpc::Status::OK;
  }

 private:
  FakeModalServer& owner_;
};

FakeModalServer::FakeModalServer() : service_(std::make_unique<Service>(*this)) {
  listen(grpc::InsecureServerCredentials());
}

FakeModalServer::FakeModalServer(const Tls& tls)
    : service_(std::make_unique<Service>(*this)), tls_(true) {
  grpc::SslServerCredentialsOptions options;
  options.pem_key_cert_pairs.push_back({tls.key_pem, tls.cert_pem});
  listen(grpc::SslServerCredentials(options));
}

void FakeModalServer::listen(std::shared_ptr<grpc::ServerCredentials> credentials) {
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", std::move(credentials), &port_);
  builder.RegisterService(service_.get());
  server_ = builder.BuildAndStart();
  if (!server_ || port_ == 0) throw std::runtime_error("FakeModalServer: cannot listen");
}

FakeModalServer::~FakeModalServer() {
  {
    std::lock_guard lock(mutex_);
    shutting_down_ = true;
  }
  shutdown_cv_.notify_all();
  server_->Shutdown(SystemClock::now() + std::chrono::seconds(2));
  server_->Wait();
}

std::string FakeModalServer::address() const {
  return (tls_ ? "https://127.0.0.1:" : "http://127.0.0.1:") + std::to_string(port_);
}

grpc::Status FakeModalServer::admit(grpc::ServerContext* ctx, const std::string& method,
                                    const google::protobuf::MessageLite& request) {
  std::unique_lock lock(mutex_);
  RecordedCall call;
  call.method = method;
  for (const auto& [key, value] : ctx->client_metadata()) {
    call.metadata[std::string(key.data(), key.size())] = std::string(value.data(), value.size());
  }
  call.request = request.SerializeAsString();
  calls_.push_back(std::move(call));
  ++call_counts_[method];
  // A long-running simulator must not grow without bound: keep the most recent calls.
  if (calls_.size() > kMaxRecordedCalls) {
    calls_.erase(calls_.begin(), calls_.begin() + static_cast<long>(kMaxRecordedCalls / 2));
  }

  std::chrono::milliseconds delay{0};
  if (auto it = delays_.find(method); it != delays_.end()) {
    delay = it->second;
  } else if (auto all = delays_.find(""); all != delays_.end()) {
    delay = all->second;
  }
  if (delay.count() > 0) {
    // Wake up regularly to notice a cancelled call (deadline passed, client stopped).
    const auto until = std::chrono::steady_clock::now() + delay;
    while (!shutting_down_ && !ctx->IsCancelled() && std::chrono::steady_clock::now() < until) {
      shutdown_cv_.wait_for(lock, std::chrono::milliseconds(5));
    }
    if (shutting_down_ || ctx->IsCancelled()) {
      return {grpc::StatusCode::CANCELLED, "cancelled while delayed"};
    }
  }

  if (auto it = unimplemented_.find(method); it != unimplemented_.end() && it->second) {
    return {grpc::StatusCode::UNIMPLEMENTED, method + " is not implemented"};
  }
  if (auto it = faults_.find(method); it != faults_.end()) {
    auto& fault = it->second;
    if (fault.remaining > 0) {
      --fault.remaining;
      return fault_status(fault.code, fault.retry_after_secs);
    }
    if (std::chrono::steady_clock::now() < fault.until) {
      return fault_status(fault.code, fault.retry_after_secs);
    }
  }

  if (metadata_value(ctx, "x-modal-token-id") != token_id_ ||
      metadata_value(ctx, "x-modal-token-secret") != token_secret_) {
    return {grpc::StatusCode::UNAUTHENTICATED, "invalid token id or secret"};
  }
  if (method != "AuthTokenGet" && auth_token_enabled_) {
    const auto jwt = metadata_value(ctx, "x-modal-auth-token");
    if (jwt.empty()) return {grpc::StatusCode::UNAUTHENTICATED, "missing auth token"};
    if (jwt != token_ || SystemClock::now() >= token_exp_) {
      return {grpc::StatusCode::UNAUTHENTICATED, "auth token expired or revoked"};
    }
  }
  return grpc::Status::OK;
}

std::string FakeModalServer::mint_token_locked() {
  token_exp_ = SystemClock::now() + token_lifetime_;
  const auto exp =
      std::chrono::duration_cast<std::chrono::seconds>(token_exp_.time_since_epoch()).count();
  ++token_serial_;
  const std::string header = R"({"alg":"HS256","typ":"JWT"})";
  const std::string payload =
      R"({"sub":"fake-workspace","jti":")" + std::to_string(token_serial_) + "\"" +
      (token_exp_claim_ ? R"(,"exp":)" + std::to_string(exp) : std::string()) + "}";
  token_ = base64::encode(header, base64::Alphabet::url) + "." +
           base64::encode(payload, base64::Alphabet::url) + ".fake-signature";
  return token_;
}

void FakeModalServer::set_credentials(std::string token_id, std::string token_secret) {
  std::lock_guard lock(mutex_);
  token_id_ = std::move(token_id);
  token_secret_ = std::move(token_secret);
}

void FakeModalServer::set_auth_token_enabled(bool enabled) {
  std::lock_guard lock(mutex_);
  auth_token_enabled_ = enabled;
}

void FakeModalServer::set_token_lifetime(std::chrono::seconds lifetime) {
  std::lock_guard lock(mutex_);
  token_lifetime_ = lifetime;
}

void FakeModalServer::set_token_exp_claim(bool present) {
  std::lock_guard lock(mutex_);
  token_exp_claim_ = present;
}

void FakeModalServer::set_rate_deprecations(std::map<std::string, std::string> warnings,
                                            std::map<std::string, std::string> errors) {
  std::lock_guard lock(mutex_);
  rate_warnings_ = std::move(warnings);
  rate_errors_ = std::move(errors);
}

void FakeModalServer::set_task_list_requires_app(bool required) {
  std::lock_guard lock(mutex_);
  task_list_requires_app_ = required;
}

void FakeModalServer::set_exclude_partial_intervals(bool exclude) {
  std::lock_guard lock(mutex_);
  exclude_partial_intervals_ = exclude;
}

void FakeModalServer::rotate_token() {
  std::lock_guard lock(mutex_);
  mint_token_locked();
}

std::string FakeModalServer::current_token() const {
  std::lock_guard lock(mutex_);
  return token_;
}

void FakeModalServer::set_apps(std::vector<modal_pb::AppListResponse::AppListItem> apps) {
  std::lock_guard lock(mutex_);
  apps_ = std::move(apps);
}

void FakeModalServer::set_tasks(const std::string& app_id, std::vector<modal_pb::TaskStats> tasks) {
  std::lock_guard lock(mutex_);
  tasks_[app_id] = std::move(tasks);
}

void FakeModalServer::set_task_info(const std::string& task_id,
                                    modal_pb::TaskGetInfoResponse info) {
  std::lock_guard lock(mutex_);
  task_info_[task_id] = std::move(info);
}

void FakeModalServer::set_function_stats(const std::string& function_id,
                                         modal_pb::FunctionStats stats) {
  std::lock_guard lock(mutex_);
  function_stats_[function_id] = std::move(stats);
}

void FakeModalServer::add_job(const std::string& id, unsigned backlog) {
  modal_pb::TaskStats task;
  task.set_task_id("ta-" + id);
  task.set_app_id("ap-" + id);
  task.set_started_at(100);
  set_tasks("ap-" + id, {task});
  modal_pb::TaskGetInfoResponse info;
  info.set_app_id("ap-" + id);
  info.mutable_info()->set_id("ta-" + id);
  set_task_info("ta-" + id, info);
  modal_pb::FunctionStats stats;
  stats.set_backlog(backlog);
  set_function_stats("fu-" + id, stats);
}

void FakeModalServer::set_billing_items(const std::string& resolution,
                                        std::vector<modal_pb::WorkspaceBillingReportItem> items) {
  std::lock_guard lock(mutex_);
  billing_[resolution] = std::move(items);
}

void FakeModalServer::set_rates(std::map<std::string, std::string> rates) {
  std::lock_guard lock(mutex_);
  rates_ = std::move(rates);
}

void FakeModalServer::set_environments(std::vector<modal_pb::EnvironmentListItem> environments) {
  std::lock_guard lock(mutex_);
  environments_ = std::move(environments);
}

void FakeModalServer::set_environment_billing(const std::string& environment_id,
                                              modal_pb::EnvironmentBillingSummaryResponse summary) {
  std::lock_guard lock(mutex_);
  environment_billing_[environment_id] = std::move(summary);
}

void FakeModalServer::refuse_environment_billing(const std::string& environment_id,
                                                 std::optional<grpc::StatusCode> code) {
  std::lock_guard lock(mutex_);
  if (code) {
    environment_billing_refused_[environment_id] = *code;
  } else {
    environment_billing_refused_.erase(environment_id);
  }
}

void FakeModalServer::fail_next(const std::string& method, int count, grpc::StatusCode code,
                                std::optional<double> retry_after_secs) {
  std::lock_guard lock(mutex_);
  faults_[method] = Fault{count, {}, code, retry_after_secs};
}

void FakeModalServer::fail_for(const std::string& method, std::chrono::milliseconds duration,
                               grpc::StatusCode code, std::optional<double> retry_after_secs) {
  std::lock_guard lock(mutex_);
  faults_[method] = Fault{0, std::chrono::steady_clock::now() + duration, code, retry_after_secs};
}

void FakeModalServer::set_delay(const std::string& method, std::chrono::milliseconds delay) {
  std::lock_guard lock(mutex_);
  delays_[method] = delay;
}

void FakeModalServer::set_billing_abort_after(std::optional<int> n) {
  std::lock_guard lock(mutex_);
  billing_abort_after_ = n;
}

void FakeModalServer::set_unimplemented(const std::string& method, bool unimplemented) {
  std::lock_guard lock(mutex_);
  unimplemented_[method] = unimplemented;
}

std::vector<FakeModalServer::RecordedCall> FakeModalServer::calls() const {
  std::lock_guard lock(mutex_);
  return calls_;
}

std::vector<FakeModalServer::RecordedCall> FakeModalServer::calls_of(
    const std::string& method) const {
  std::lock_guard lock(mutex_);
  std::vector<RecordedCall> out;
  for (const auto& call : calls_) {
    if (call.method == method) out.push_back(call);
  }
  return out;
}

int FakeModalServer::call_count(const std::string& method) const {
  std::lock_guard lock(mutex_);
  auto it = call_counts_.find(method);
  return it == call_counts_.end() ? 0 : it->second;
}

std::map<std::string, int> FakeModalServer::call_counts() const {
  std::lock_guard lock(mutex_);
  return call_counts_;
}

std::vector<modal_pb::WorkspaceBillingReportRequest> FakeModalServer::billing_requests() const {
  std::lock_guard lock(mutex_);
  return billing_requests_;
}

void FakeModalServer::clear_calls() {
  std::lock_guard lock(mutex_);
  calls_.clear();
  call_counts_.clear();
  billing_requests_.clear();
}

}  // namespace mx::testing
