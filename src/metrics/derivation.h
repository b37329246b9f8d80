// Derivation (DESIGN.md, step 3): from the model to rendered metric families. Per-job series are
// rendered per job UID, so a changed job re-renders only its own lines; aggregates are small and
// re-rendered as a whole when they change. The names, types and labels are METRICS.md's.
#pragma once

#include <optional>
#include <string>

#include "exposition/snapshot.h"
#include "metrics/app_cost.h"
#include "model/model.h"

namespace mx {

class Derivation {
 public:
  explicit Derivation(FamilySet& families);

  // Renders whatever the model marked dirty since the last call.
  void update(Model& model);

 private:
  void render_job(const Model& model, const std::string& uid);
  void render_endpoint(const Model& model, const std::string& uid);
  void render_aggregates(const Model& model);

  FamilySet& set_;
  FamilyId jobs_total_, jobs_active_, job_duration_, job_replicas_, job_queue_, cold_starts_,
      gpu_utilization_, network_bandwidth_, cost_, i6pn_jobs_, operator_errors_, operator_restarts_,
      webhook_requests_, job_info_, job_status_phase_, job_running_seconds_, app_running_tasks_,
      function_backlog_, endpoint_ready_replicas_, dropped_jobs_;
  std::set<std::string> rendered_apps_;
  std::optional<AppCostFamily> app_cost_;  // added last: renders after the others
};

}  // namespace mx
