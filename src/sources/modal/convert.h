// Modal responses (modal_api.proto messages) to the model's plain structs: pure functions, no
// gRPC call, no sink, so each rule is unit tested on its own (tests/modal/convert_test.cpp).
// Problems in the data are reported back in counts for the caller to log and count; one bad
// item never hides the others.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <grpcpp/support/status.h>

#include "modal_api.pb.h"
#include "model/objects.h"

namespace mx::modal_convert {

namespace pb = ::modal::client;

// Items dropped from one response, by reason.
struct Issues {
  int malformed = 0;    // a required field missing, or a number that is not a decimal
  int not_finite = 0;   // a decimal that is NaN or Infinity
  std::string example;  // the first offending value (truncated), for the log; never a secret
  int total() const { return malformed + not_finite; }
};

// AppList: items without an app id are dropped (malformed).
std::vector<ModalApp> apps(const pb::AppListResponse& response, Issues& issues);

// TaskList split by each task's app_id. A task without an id is dropped (malformed); a task
// without an app id gets `requested_app_id` when the call asked for one app, else it is dropped.
// Every id in `want_apps` gets an entry, empty when it has no running task, so that "listed and
// none running" is told apart from "not asked". Tasks of other apps are left out.
std::map<std::string, std::vector<ModalTask>> tasks_by_app(
    const pb::TaskListResponse& response, const std::string& requested_app_id,
    const std::vector<std::string>& want_apps, Issues& issues);

// TaskGetInfo: the GPU type from gpu_config, else the legacy gpu_type field; a GPU named without
// a count is one GPU (as in the operator's GPU specs).
ModalTaskInfo task_info(const pb::TaskGetInfoResponse& response, const std::string& task_id);

ModalFunctionStats function_stats(const pb::FunctionStats& response,
                                  const std::string& function_id);

// WorkspaceBillingRates: keys lower-cased; keys named in deprecation_warnings or
// deprecation_errors are dropped and listed in `deprecated` (as sent); values that are not
// finite decimals are dropped and counted.
struct Rates {
  BillingRates rates;
  std::vector<std::string> deprecated;
};
Rates rates(const pb::WorkspaceBillingRatesResponse& response, Issues& issues);

// One WorkspaceBillingReport item added to `report` as it arrives: the stream is decoded item by
// item and no message is kept. An item without an app id, an interval or a usable cost is
// dropped and counted; a negative cost (a credit) is kept. A cost_by_resource entry that is not a
// finite decimal is dropped and counted, the item kept.
void add_billing_item(const pb::WorkspaceBillingReportItem& item, BillingReport& report,
                      Issues& issues);

// EnvironmentList: items without a name are dropped (malformed). An optional field without
// presence stays nullopt (no limit, no budget); a count below 0 is 0; an amount that is not a
// finite number is dropped and counted.
std::vector<ModalEnvironment> environments(const pb::EnvironmentListResponse& response,
                                           Issues& issues);

// EnvironmentBillingSummary: metered_cost and each metered_cost_breakdown entry as exact
// decimals; an empty metered_cost is "not sent", a value that is not a finite decimal is dropped
// and counted.
EnvironmentCost environment_cost(const pb::EnvironmentBillingSummaryResponse& response,
                                 Issues& issues);

// The first instant of the UTC month holding `unix_seconds` (EnvironmentBillingSummary's
// start_timestamp: its interval is the billing month starting there).
std::int64_t month_start(std::int64_t unix_seconds);

// The server's "wait this long" from a failed call's status details (an RPCRetryPolicy in
// google.rpc.Status.details), in seconds; nullopt when absent, unreadable or not positive.
std::optional<double> retry_after_seconds(const grpc::Status& status);

}  // namespace mx::modal_convert
