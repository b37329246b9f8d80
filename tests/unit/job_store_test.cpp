// The job store's indexes hold views of the stored jobs' own strings (model/job_store.h). These
// tests change those strings in every way an update can (names and ids long enough to live on
// the heap, so that a view left behind reads freed memory under ASan) and check every index.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "model/job_store.h"

namespace mx {
namespace {

// Long enough to be heap-allocated (beyond the small-string buffer).
std::string longer(const std::string& s) {
  return s + "-0123456789abcdefghijklmnopqrstuvwxyz";
}

JobObject job(const std::string& uid, const std::string& name, const std::string& app = "",
              const std::string& function = "") {
  JobObject j;
  j.uid = longer(uid);
  j.kind = "ModalJob";
  j.namespace_name = longer("ns");
  j.name = longer(name);
  j.modal_app_id = app.empty() ? "" : longer(app);
  j.modal_function_id = function.empty() ? "" : longer(function);
  return j;
}

std::vector<std::string> uids(const std::vector<JobState*>& states) {
  std::vector<std::string> out;
  for (const JobState* s : states) out.push_back(s->object.uid);
  std::sort(out.begin(), out.end());
  return out;
}

struct Store {
  JobStore store;
  std::vector<std::string> renamed;
  bool is_new = false;
  JobState& put(JobObject j) {
    renamed.clear();
    return store.put(std::move(j), is_new, renamed);
  }
};

TEST(JobStoreTest, AnUpdateReplacingEveryStringKeepsTheIndexesTrue) {
  Store s;
  s.put(job("a", "train", "app1", "fn1"));
  EXPECT_TRUE(s.is_new);
  for (int i = 0; i < 5; ++i) {
    // Same UID and name, fresh strings: the name stays owned, the ids move.
    s.put(job("a", "train", "app" + std::to_string(i), "fn" + std::to_string(i)));
    EXPECT_FALSE(s.is_new);
  }
  const JobState* owner = s.store.owner_of(longer("ns"), longer("train"));
  ASSERT_NE(owner, nullptr);
  EXPECT_EQ(owner->object.uid, longer("a"));
  EXPECT_TRUE(s.store.with_app(longer("app1")).empty());
  EXPECT_EQ(uids(s.store.with_app(longer("app4"))), std::vector<std::string>{longer("a")});
  EXPECT_EQ(uids(s.store.with_function(longer("fn4"))), std::vector<std::string>{longer("a")});
  EXPECT_TRUE(s.store.with_app("").empty());
}

TEST(JobStoreTest, JobsOfOneAppAreAllFoundAndLeaveWithTheirJob) {
  Store s;
  s.put(job("a", "one", "app"));
  s.put(job("b", "two", "app"));
  s.put(job("c", "three", "other"));
  EXPECT_EQ(uids(s.store.with_app(longer("app"))),
            (std::vector<std::string>{longer("a"), longer("b")}));
  std::vector<std::string> renamed;
  ASSERT_TRUE(s.store.take(longer("a"), renamed).has_value());
  EXPECT_EQ(uids(s.store.with_app(longer("app"))), std::vector<std::string>{longer("b")});
  EXPECT_EQ(s.store.owner_of(longer("ns"), longer("one")), nullptr);
  EXPECT_FALSE(s.store.take(longer("a"), renamed).has_value());
}

// modal_jobs_active reads these counts instead of walking every job: they must follow every way
// a job's GPU type or phase can change, and a type must leave with its last job.
TEST(JobStoreTest, GpuCountsFollowPhaseAndTypeChangesAndLeaveWithTheLastJob) {
  Store s;
  auto gpu_job = [](const std::string& uid, const std::string& gpu, const std::string& phase) {
    JobObject j = job(uid, uid);
    j.gpu_type = gpu;
    j.phase = phase;
    return j;
  };
  auto counts = [&s] {
    std::map<std::string, std::pair<std::size_t, std::size_t>> out;
    for (const auto& [gpu, c] : s.store.gpu_counts()) out[gpu] = {c.jobs, c.active};
    return out;
  };
  using Counts = std::map<std::string, std::pair<std::size_t, std::size_t>>;
  s.put(gpu_job("a", "A100", "Pending"));
  s.put(gpu_job("b", "A100", "Running"));
  s.put(gpu_job("c", "H100", "Succeeded"));
  EXPECT_EQ(counts(), (Counts{{"A100", {2, 2}}, {"H100", {1, 0}}}));
  s.put(gpu_job("b", "A100", "Failed"));  // a phase change
  s.put(gpu_job("a", "T4", "Running"));   // a type change
  EXPECT_EQ(counts(), (Counts{{"A100", {1, 0}}, {"H100", {1, 0}}, {"T4", {1, 1}}}));
  std::vector<std::string> renamed;
  ASSERT_TRUE(s.store.take(longer("b"), renamed).has_value());
  ASSERT_TRUE(s.store.take(longer("a"), renamed).has_value());
  EXPECT_EQ(counts(), (Counts{{"H100", {1, 0}}}));
  ASSERT_TRUE(s.store.take(longer("c"), renamed).has_value());
  EXPECT_TRUE(s.store.gpu_counts().empty());
}

TEST(JobStoreTest, ANameSharedByTwoJobsPassesOnWhenItsOwnerLeavesOrIsRenamed) {
  Store s;
  s.put(job("a", "shared"));
  JobState& second = s.put(job("b", "shared"));
  EXPECT_FALSE(second.renders_per_job);
  EXPECT_EQ(s.store.owner_of(longer("ns"), longer("shared"))->object.uid, longer("a"));

  // The owner is renamed: the other job takes the name, the owner claims its new one.
  JobState& renamed = s.put(job("a", "elsewhere"));
  EXPECT_TRUE(s.is_new);
  EXPECT_TRUE(renamed.renders_per_job);
  EXPECT_EQ(s.renamed, std::vector<std::string>{longer("b")});
  EXPECT_EQ(s.store.owner_of(longer("ns"), longer("shared"))->object.uid, longer("b"));
  EXPECT_EQ(s.store.owner_of(longer("ns"), longer("elsewhere"))->object.uid, longer("a"));

  // A third job shares "shared" again; the owner leaves and the name passes to it.
  s.put(job("c", "shared"));
  std::vector<std::string> passed;
  s.store.take(longer("b"), passed);
  EXPECT_EQ(passed, std::vector<std::string>{longer("c")});
  EXPECT_TRUE(s.store.find(longer("c"))->renders_per_job);
  // A job that never owned its name leaves: nothing passes.
  s.put(job("d", "shared"));
  passed.clear();
  s.store.take(longer("d"), passed);
  EXPECT_TRUE(passed.empty());
  EXPECT_EQ(s.store.owner_of(longer("ns"), longer("shared"))->object.uid, longer("c"));
}

}  // namespace
}  // namespace mx
