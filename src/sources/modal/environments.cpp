// The environment rounds of the Modal source (rounds.h): EnvironmentList, and the month-to-date
// EnvironmentBillingSummary of each environment it lists.
#include <algorithm>
#include <chrono>
#include <utility>

#include "common/log.h"
#include "sources/modal/rounds.h"

namespace mx::modal_client {
namespace {

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

void Rounds::queue_environment_calls(Poller& p) {
  if (!sink_.exports_environments()) return;
  if (p.kind == Kind::environments) {
    p.queue.push_back([this, &p] { environment_list(p); });
    return;
  }
  if (!ask(p, environment_ids_)) return;
  const std::int64_t month = modal_convert::month_start(unix_now());
  for (const auto& id : environment_ids_) {
    p.queue.push_back([this, &p, id, month] { environment_cost(p, id, month); });
  }
}

void Rounds::environment_list(Poller& p) {
  rpc_.unary("EnvironmentList", pb::Empty{}, &Stub::PrepareAsyncEnvironmentList,
             [this, &p](pb::EnvironmentListResponse& response, const Rpc::Result& result) {
               if (!result) {
                 modal_convert::Issues issues;
                 auto environments = modal_convert::environments(response, issues);
                 report(issues, "EnvironmentList",
                        "environment without a name, or amount not finite");
                 std::vector<std::string> ids;
                 for (const auto& e : environments) {
                   if (!e.environment_id.empty()) ids.push_back(e.environment_id);
                 }
                 std::sort(ids.begin(), ids.end());
                 ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
                 environment_ids_ = std::move(ids);
                 sink_.modal_environments(std::move(environments));
                 // A new environment gets its cost now rather than up to billing_interval later.
                 auto& costs = poller(Kind::environment_costs);
                 const bool unasked =
                     std::any_of(environment_ids_.begin(), environment_ids_.end(),
                                 [&](const auto& id) { return !costs.asked.contains(id); });
                 if (unasked && !costs.running && !costs.last_failed) schedule(costs, Duration{0});
               }
               call_done(p, result);
             });
}

void Rounds::environment_cost(Poller& p, const std::string& environment_id, std::int64_t month) {
  pb::EnvironmentBillingSummaryRequest request;
  request.mutable_start_timestamp()->set_seconds(month);
  request.set_environment_id(environment_id);
  rpc_.unary(
      "EnvironmentBillingSummary", std::move(request), &Stub::PrepareAsyncEnvironmentBillingSummary,
      [this, &p, environment_id](pb::EnvironmentBillingSummaryResponse& response,
                                 const Rpc::Result& result) {
        if (Rpc::refused(result)) {
          // No public client makes this call: many tokens may not. Not the source's failure.
          if (refused_logged_.insert(environment_id).second) {
            log::warn("modal refuses the environment's billing summary; its cost stays absent",
                      {{"environment_id", environment_id}, {"error_type", result->error_type}});
          }
          sink_.modal_environment_cost(environment_id, std::nullopt);
          call_done(p, std::nullopt);
          return;
        }
        if (!result) {
          modal_convert::Issues issues;
          auto cost = modal_convert::environment_cost(response, issues);
          report(issues, "EnvironmentBillingSummary", "amount that is not a finite decimal");
          sink_.modal_environment_cost(environment_id, std::move(cost));
        }
        call_done(p, result);
      },
      /*may_refuse=*/true);
}

}  // namespace mx::modal_client
