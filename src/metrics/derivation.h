// Derivation (docs/design.md, step 3): from the model to rendered metric families. Per-job
// series come from the table in metrics/job_families.h and are rendered per job UID, so a changed
// job re-renders only its own lines; aggregates come from a table of the same kind
// (derivation.cpp), are small and re-rendered as a whole when they change. Names, types and
// labels are those of docs/metrics.md.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "exposition/snapshot_builder.h"
#include "metrics/app_cost.h"
#include "metrics/environment_families.h"
#include "metrics/job_families.h"
#include "model/model.h"

namespace mx {

class Derivation {
 public:
  explicit Derivation(FamilySet& families);

  // Renders what the model reported changed since the last call: every changed endpoint and
  // aggregate, and at most `max_jobs` changed jobs. Returns true when changed jobs remain (the
  // caller hands this slice over and calls again): a fleet listed at start-up is rendered in
  // slices, so its lines never all wait in memory at once.
  bool update(Model& model, std::size_t max_jobs = static_cast<std::size_t>(-1));

  // Every family a Derivation adds to its family set (the metric reference is checked against
  // them, tests/style).
  static std::vector<FamilyDesc> family_descs();

 private:
  // Every family of the job (it changed), or only the families `cause` re-renders alone (a cost
  // refresh, a telemetry scrape).
  void render_job(const Model& model, const std::string& uid,
                  RenderCause cause = RenderCause::job_changed);
  void render_endpoint(const Model& model, const std::string& uid);
  void render_aggregates(const Model& model);
  void render_app(const Model& model, const std::string& app_id);
  // Copies `lines` into the family set's batch and clears them.
  void hand_over(FamilyId family, std::string_view key, std::string& lines);

  FamilySet& set_;
  std::vector<FamilyId> job_family_ids_;  // parallel to job_families()
  std::vector<FamilyId> aggregate_ids_;   // parallel to the aggregate table (derivation.cpp)
  FamilyId app_running_tasks_, endpoint_ready_replicas_;
  std::string scratch_;                              // render_job's lines, reused from job to job
  std::optional<AppCostFamily> app_cost_;            // after the others but for the environments
  std::optional<EnvironmentFamilies> environments_;  // added last: renders after the others
};

}  // namespace mx
