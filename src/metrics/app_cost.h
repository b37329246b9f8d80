// Cost figures from Modal's billing reports (docs/modal.md, "Billing"):
//   job_cost_today  modal_cost_estimate_usd{time_period="daily"}: today's cost so far of a job's
//                   app, the billed complete intervals plus the running estimate for the rest
//   AppCostFamily   modal_app_cost_usd{app_id, resource, time_period}: each app's billed cost
//                   split by resource (WorkspaceBillingReportItem.cost_by_resource)
// Kept apart from derivation.cpp so the billing rules live in one place.
#pragma once

#include <optional>
#include <set>
#include <string>

#include "exposition/snapshot_builder.h"
#include "model/model.h"

namespace mx {

// Today's (UTC) cost of the job's app so far. Billed part: today's "d" row when the server
// reported one (it covers the whole day), else today's complete "h" rows. Estimate: `hourly` over
// the part of today after the last reported interval during which the job ran ([started, end],
// end = finished_at, else now while running). nullopt before the first billing report, and when
// the app has no billing row and nothing to estimate.
std::optional<double> job_cost_today(const Model& model, const JobObject& job, double hourly,
                                     std::optional<double> started, bool running);

class AppCostFamily {
 public:
  explicit AppCostFamily(FamilySet& families);
  static const FamilyDesc& desc();
  // Re-renders every app's series (call when the model reports new billing).
  void render(const Model& model);

 private:
  FamilySet& set_;
  FamilyId family_;
};

}  // namespace mx
