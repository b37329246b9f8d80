// The modal_environment_* families (docs/metrics.md, "Modal environments"): each Modal
// environment's concurrency and spend limits from EnvironmentList and its month-to-date metered
// cost from EnvironmentBillingSummary. A field Modal leaves unset (no limit, no budget, a refused
// summary) is an absent series, never 0. Environments are few (a handful per workspace): every
// family is re-rendered as a whole when the model reports a change.
#pragma once

#include <vector>

#include "exposition/snapshot_builder.h"
#include "model/model.h"

namespace mx {

class EnvironmentFamilies {
 public:
  explicit EnvironmentFamilies(FamilySet& families);
  static std::vector<FamilyDesc> descs();
  // Re-renders every environment family (call when the model reports changed environments).
  void render(const Model& model);

 private:
  FamilySet& set_;
  std::vector<FamilyId> ids_;  // parallel to descs()
};

}  // namespace mx
