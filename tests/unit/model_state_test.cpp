// The model alone, linked without the derivation and the self metrics (tests/unit/CMakeLists.txt):
// what it records and hands out, not what is rendered from it.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "model/model.h"

namespace mx {
namespace {

class ModelStateTest : public ::testing::Test {
 protected:
  ModelStateTest() : model_(Config{}, [this] { return clock_; }) {}

  static JobObject job(const std::string& uid, const std::string& phase) {
    JobObject j;
    j.uid = uid;
    j.kind = "ModalJob";
    j.namespace_name = "ml";
    j.name = "job-" + uid;
    j.gpu_type = "T4";
    j.gpu_count = 1;
    j.replicas = 1;
    j.phase = phase;
    j.created_at = 1000;
    return j;
  }

  double clock_ = 2000;
  Model model_;
};

// Publishes wait for the Kubernetes source's first complete sync: its first success ends the
// wait, and so does a failure before it (nothing more is coming soon). Other sources' health
// does not touch it.
TEST_F(ModelStateTest, KubernetesListingEndsAtItsFirstSuccessOrFailure) {
  EXPECT_TRUE(model_.kubernetes_listing());
  model_.source_succeeded("modal", 0.1);
  model_.source_failed("telemetry");
  EXPECT_TRUE(model_.kubernetes_listing());
  model_.source_succeeded("kubernetes", 0.1);
  EXPECT_FALSE(model_.kubernetes_listing());

  Model failing(Config{}, [] { return 2000.0; });
  failing.source_failed("kubernetes");
  EXPECT_FALSE(failing.kubernetes_listing());
}

// The time-driven part of a running job's cost is re-rendered once a minute per job, spread over
// the minute: no tick re-renders the whole fleet at once (which held up other changes).
TEST_F(ModelStateTest, RunningJobsRefreshTheirCostOnceAMinuteSpreadOverTheMinute) {
  constexpr std::size_t kJobs = 1200;
  for (std::size_t i = 0; i < kJobs; ++i) {
    auto j = job("r" + std::to_string(i), "Running");
    j.started_at = 1500;
    model_.upsert_job(j);
  }
  model_.upsert_job(job("waiting", "Pending"));
  ASSERT_EQ(model_.take_dirty_jobs().size(), kJobs + 1);  // the upserts themselves
  std::map<std::string, int> refreshes;
  std::size_t most = 0;
  for (int tick = 0; tick < 24; ++tick) {  // two minutes of 5 s ticks
    clock_ += 5;
    model_.tick();
    EXPECT_FALSE(model_.has_dirty_jobs()) << "a tick re-rendered a whole job";
    const auto dirty = model_.take_dirty_costs();
    most = std::max(most, dirty.size());
    for (const auto& uid : dirty) ++refreshes[uid];
  }
  EXPECT_EQ(refreshes.size(), kJobs);  // every running job, and not the pending one
  EXPECT_EQ(refreshes.count("waiting"), 0u);
  for (const auto& [uid, n] : refreshes) EXPECT_EQ(n, 2) << uid;
  EXPECT_LT(most, kJobs / 4) << "one tick re-rendered a large share of the fleet";
}

// The refresh re-renders the running total cost with the time that passed (and only the cost:
// the test above checks that no whole job is re-rendered).
}  // namespace
}  // namespace mx
