// A scriptable, in-process fake of Modal's control plane (modal.client.ModalClient over gRPC on
// 127.0.0.1 with an ephemeral port; plaintext, or TLS with a certificate the test gives). Test
// fixture, and the Modal half of tools/modal-sim.
//
// It answers AuthTokenGet, AppList, TaskList, TaskGetInfo, FunctionGetCurrentStats,
// WorkspaceBillingReport (server streaming), WorkspaceBillingRates, EnvironmentList and
// EnvironmentBillingSummary (refused for chosen environments) from data set through the
// setters, checks the auth metadata of every call like the real service (wrong or missing token
// id/secret, or a missing/revoked/expired JWT -> UNAUTHENTICATED), records what each call carried,
// and injects faults: the next N calls of a method (or every call for a while) fail with a given
// code, optionally carrying Modal's RPCRetryPolicy (retry_after_secs) in the status details; a
// response delay (a slow server), a billing stream that breaks after N items, methods that are
// UNIMPLEMENTED. TaskList without an app_id lists every app's tasks of the environment, as
// Modal's does (or is refused, set_task_list_requires_app). Billing can exclude partial intervals
// at the end of the window as Modal documents (set_exclude_partial_intervals). Calls are counted
// per method without limit. Every method is thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "modal_api.grpc.pb.h"
#include "rpc_status.pb.h"

namespace mx::testing {

namespace modal_pb = ::modal::client;

// `message` in a google.protobuf.Any (what the full runtime's Any::PackFrom makes; the project's
// protos are lite).
::mx::rpc::Any pack_any(const google::protobuf::MessageLite& message);

class FakeModalServer {
 public:
  // Metadata and request of one call, as received (before any check).
  struct RecordedCall {
    std::string method;                           // "AppList", "AuthTokenGet", ...
    std::map<std::string, std::string> metadata;  // x-modal-* and the rest; last value wins
    std::string request;                          // the request, serialized

    // The request parsed as `Request` (the lite runtime has no text form to compare).
    template <class Request>
    Request request_as() const {
      Request parsed;
      parsed.ParseFromString(request);
      return parsed;
    }
  };

  static constexpr const char* kDefaultTokenId = "ak-fake-token-id";
  static constexpr const char* kDefaultTokenSecret = "as-fake-token-secret";

  // A server certificate and its key (PEM) for TLS.
  struct Tls {
    std::string cert_pem;
    std::string key_pem;
  };

  FakeModalServer();  // listening when constructed; throws std::runtime_error when it cannot bind
  explicit FakeModalServer(const Tls& tls);  // the same over TLS
  ~FakeModalServer();
  FakeModalServer(const FakeModalServer&) = delete;
  FakeModalServer& operator=(const FakeModalServer&) = delete;

  std::string address() const;  // "http://127.0.0.1:<port>" ("https://" over TLS)
  int port() const { return port_; }

  // --- auth ---------------------------------------------------------------------------------
  void set_credentials(std::string token_id, std::string token_secret);
  // false: AuthTokenGet is UNIMPLEMENTED and other calls need no x-modal-auth-token (an older
  // server). Default true.
  void set_auth_token_enabled(bool enabled);
  // Lifetime of the JWTs minted from now on (their exp claim). Default 1 h.
  void set_token_lifetime(std::chrono::seconds lifetime);
  // false: minted JWTs carry no exp claim (the server still expires them after the lifetime).
  void set_token_exp_claim(bool present);
  // Revokes the current JWT: calls carrying it get UNAUTHENTICATED; AuthTokenGet mints a new one.
  void rotate_token();
  std::string current_token() const;  // "" before the first AuthTokenGet

  // --- data ---------------------------------------------------------------------------------
  void set_apps(std::vector<modal_pb::AppListResponse::AppListItem> apps);
  void set_tasks(const std::string& app_id, std::vector<modal_pb::TaskStats> tasks);
  void set_task_info(const std::string& task_id, modal_pb::TaskGetInfoResponse info);
  void set_function_stats(const std::string& function_id, modal_pb::FunctionStats stats);
  // One running job of a load test: app "ap-<id>" with one running task "ta-<id>" (and its
  // TaskGetInfo), function "fu-<id>" with `backlog` inputs waiting.
  void add_job(const std::string& id, unsigned backlog);
  // Items served for requests of `resolution` ("d" or "h"), filtered by the request's app_ids
  // (when non-empty) and by [start_timestamp, end_timestamp) on the item's interval (when set).
  void set_billing_items(const std::string& resolution,
                         std::vector<modal_pb::WorkspaceBillingReportItem> items);
  void set_rates(std::map<std::string, std::string> rates);
  // WorkspaceBillingRatesResponse.deprecation_warnings / deprecation_errors (key -> message).
  void set_rate_deprecations(std::map<std::string, std::string> warnings,
                             std::map<std::string, std::string> errors);
  // true: TaskList without an app_id is refused with INVALID_ARGUMENT (a server without the
  // environment-wide form). Default false.
  void set_task_list_requires_app(bool required);
  // true: billing items whose interval does not end by the request's end_timestamp are left out
  // ("partial intervals at the end are excluded", Modal's documented semantics). Default false:
  // the interval in progress is included (the simulator scripts today's row).
  void set_exclude_partial_intervals(bool exclude);

  // EnvironmentList items, as served (optional fields with or without presence).
  void set_environments(std::vector<modal_pb::EnvironmentListItem> environments);
  // The EnvironmentBillingSummary of one environment id; an id without one gets NOT_FOUND.
  void set_environment_billing(const std::string& environment_id,
                               modal_pb::EnvironmentBillingSummaryResponse summary);
  // The summary of `environment_id` is refused with `code` (PERMISSION_DENIED, UNIMPLEMENTED,
  // ...) as for a token that may not see it; nullopt: answered again.
  void refuse_environment_billing(const std::string& environment_id,
                                  std::optional<grpc::StatusCode> code);

  // --- faults -------------------------------------------------------------------------------
  // The next `count` calls of `method` fail with `code` (after being recorded).
  void fail_next(const std::string& method, int count, grpc::StatusCode code,
                 std::optional<double> retry_after_secs = std::nullopt);
  // Every call of `method` fails with `code` until `duration` from now has passed.
  void fail_for(const std::string& method, std::chrono::milliseconds duration,
                grpc::StatusCode code, std::optional<double> retry_after_secs = std::nullopt);
  // Every call of `method` ("" = every method) waits this long before answering; it returns
  // early when the client cancels or its deadline passes.
  void set_delay(const std::string& method, std::chrono::milliseconds delay);
  // Billing streams send `n` items, then fail with UNAVAILABLE; nullopt: complete normally.
  void set_billing_abort_after(std::optional<int> n);
  void set_unimplemented(const std::string& method, bool unimplemented);

  // --- observation --------------------------------------------------------------------------
  std::vector<RecordedCall> calls() const;
  std::vector<RecordedCall> calls_of(const std::string& method) const;
  // Calls of `method` since construction or clear_calls() (not limited like calls()).
  int call_count(const std::string& method) const;
  std::map<std::string, int> call_counts() const;
  std::vector<modal_pb::WorkspaceBillingReportRequest> billing_requests() const;
  void clear_calls();

 private:
  class Service;
  void listen(std::shared_ptr<grpc::ServerCredentials> credentials);
  friend class Service;

  // Records the call, applies delay, injected faults and the auth checks. OK: go on answering.
  grpc::Status admit(grpc::ServerContext* ctx, const std::string& method,
                     const google::protobuf::MessageLite& request);
  std::string mint_token_locked();

  mutable std::mutex mutex_;
  std::condition_variable shutdown_cv_;
  bool shutting_down_ = false;

  std::string token_id_ = kDefaultTokenId;
  std::string token_secret_ = kDefaultTokenSecret;
  bool auth_token_enabled_ = true;
  std::chrono::seconds token_lifetime_{3600};
  bool token_exp_claim_ = true;
  std::string token_;
  std::chrono::system_clock::time_point token_exp_{};
  std::uint64_t token_serial_ = 0;

  std::vector<modal_pb::AppListResponse::AppListItem> apps_;
  std::map<std::string, std::vector<modal_pb::TaskStats>> tasks_;
  std::map<std::string, modal_pb::TaskGetInfoResponse> task_info_;
  std::map<std::string, modal_pb::FunctionStats> function_stats_;
  std::map<std::string, std::vector<modal_pb::WorkspaceBillingReportItem>> billing_;
  std::map<std::string, std::string> rates_;
  std::map<std::string, std::string> rate_warnings_;
  std::map<std::string, std::string> rate_errors_;
  std::vector<modal_pb::EnvironmentListItem> environments_;
  std::map<std::string, modal_pb::EnvironmentBillingSummaryResponse> environment_billing_;
  std::map<std::string, grpc::StatusCode> environment_billing_refused_;
  bool task_list_requires_app_ = false;
  bool exclude_partial_intervals_ = false;

  struct Fault {
    int remaining = 0;
    std::chrono::steady_clock::time_point until{};
    grpc::StatusCode code = grpc::StatusCode::OK;
    std::optional<double> retry_after_secs;
  };
  std::map<std::string, Fault> faults_;
  std::map<std::string, std::chrono::milliseconds> delays_;
  std::optional<int> billing_abort_after_;
  std::map<std::string, bool> unimplemented_;

  std::vector<RecordedCall> calls_;
  std::map<std::string, int> call_counts_;
  std::vector<modal_pb::WorkspaceBillingReportRequest> billing_requests_;

  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  bool tls_ = false;
};

}  // namespace mx::testing
