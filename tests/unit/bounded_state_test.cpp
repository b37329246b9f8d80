// State bounded by the live job set: 20,000 jobs churn through create -> run -> finish ->
// delete (with a watch expiry and an exporter restart on the way); every structure of the
// model and the state file return to what the live jobs need, and the counters equal the truth.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "metrics/derivation.h"
#include "model/model.h"

namespace mx {
namespace {

constexpr int kLive = 500;
constexpr int kChurned = 20000;
constexpr int kBatch = 1000;

JobObject make_job(int n, const char* phase) {
  JobObject j;
  j.uid = "uid-" + std::to_string(n);
  j.kind = n % 5 == 0 ? "Pod" : "ModalJob";
  j.namespace_name = "ml";
  j.name = "job-" + std::to_string(n);
  j.gpu_type = n % 2 ? "A100" : "T4";
  j.gpu_count = 1;
  j.i6pn = n % 7 == 0;
  j.webhook_mutated = j.kind == "Pod";
  j.modal_app_id = "ap-" + std::to_string(n);
  j.modal_function_id = "fu-" + std::to_string(n);
  j.phase = phase;
  j.created_at = 1000;
  if (std::string(phase) != "Pending") j.started_at = 1010;
  if (std::string(phase) == "Succeeded" || std::string(phase) == "Failed") j.finished_at = 1070;
  return j;
}

WarningEvent event_about(int n, std::int64_t count) {
  WarningEvent e;
  e.uid = "ev-" + std::to_string(n);
  e.namespace_name = "ml";
  e.reason = "BackOff";
  e.count = count;
  e.involved_uid = "uid-" + std::to_string(n);
  return e;
}

class BoundedStateTest : public ::testing::Test {
 protected:
  // One file per process: CTest runs this fixture's tests in parallel, and a shared path let one
  // test's save replace or remove another's.
  BoundedStateTest()
      : path_(::testing::TempDir() + "/bounded-state-" + std::to_string(::getpid()) + ".json") {
    std::filesystem::remove(path_);
    restart();
  }
  ~BoundedStateTest() override { std::filesystem::remove(path_); }

  void restart() {
    model_ = std::make_unique<Model>(Config{}, [this] { return clock_; });
    model_->load_state(path_);
  }

  // A new process lists every live object, then reports its first complete sync.
  void sync(int live_from, int live_to, const char* phase) {
    for (int n = live_from; n < live_to; ++n) model_->upsert_job(make_job(n, phase));
    model_->source_succeeded("kubernetes", 0.1);
  }

  std::uintmax_t state_size() {
    EXPECT_TRUE(model_->save_state(path_));
    return std::filesystem::file_size(path_);
  }

  std::string render() {
    FamilySet set;
    Derivation d(set);
    d.update(*model_);
    return set.publish(1)->body(ExpositionFormat::text);
  }

  double clock_ = 2000;
  std::string path_;
  std::unique_ptr<Model> model_;
};

std::uint64_t total(const Model& m, const std::string& status) {
  std::uint64_t sum = 0;
  for (const auto& [key, count] : m.jobs_total()) {
    if (std::get<0>(key) == status) sum += count;
  }
  return sum;
}

TEST_F(BoundedStateTest, ChurnReturnsToTheLiveSet) {
  // 500 live jobs that run throughout, each with a Warning Event and two Modal tasks.
  sync(0, kLive, "Running");
  for (int n = 0; n < kLive; ++n) {
    model_->observe_warning_event(event_about(n, 1));
    model_->modal_tasks(
        "ap-" + std::to_string(n),
        {{"ta-" + std::to_string(n) + "-a", "ap-" + std::to_string(n), 1001.0, 1009.0},
         {"ta-" + std::to_string(n) + "-b", "ap-" + std::to_string(n), 1001.0, 1009.0}});
  }
  model_->tick();
  const ModelSizes before = model_->sizes();
  const auto state_before = state_size();

  int failed = 0;
  int i6pn = 0;
  int webhook = 0;
  for (int base = kLive; base < kLive + kChurned; base += kBatch) {
    for (int n = base; n < base + kBatch; ++n) {
      model_->upsert_job(make_job(n, "Pending"));
      model_->observe_warning_event(event_about(n, 1));
      model_->modal_tasks("ap-" + std::to_string(n),
                          {{"ta-" + std::to_string(n), "ap-" + std::to_string(n), 1001.0, 1009.0}});
      model_->modal_task_info({"ta-" + std::to_string(n), "ap-" + std::to_string(n), 1001.0, 1009.0,
                               1070.0, "A100", 1, 1});
    }
    for (int n = base; n < base + kBatch; ++n) model_->upsert_job(make_job(n, "Running"));
    if (base == kLive + 5 * kBatch) {
      // A watch expiry: the informer re-lists and delivers every live object again.
      for (int m = 0; m < kLive; ++m) model_->upsert_job(make_job(m, "Running"));
      for (int m = base; m < base + kBatch; ++m) model_->upsert_job(make_job(m, "Running"));
    }
    for (int n = base; n < base + kBatch; ++n) {
      const bool fails = n % 10 == 0;
      failed += fails;
      i6pn += n % 7 == 0;
      webhook += n % 5 == 0;
      model_->upsert_job(make_job(n, fails ? "Failed" : "Succeeded"));
    }
    if (base == kLive + 10 * kBatch) {
      // A restart while this batch is finished but not deleted yet: the state file carries
      // the history of the live jobs, the new process lists them again.
      ASSERT_TRUE(model_->save_state(path_));
      restart();
      for (int n = 0; n < kLive; ++n) {
        model_->upsert_job(make_job(n, "Running"));
        model_->observe_warning_event(event_about(n, 1));
      }
      for (int n = base; n < base + kBatch; ++n) {
        model_->upsert_job(make_job(n, n % 10 == 0 ? "Failed" : "Succeeded"));
        model_->observe_warning_event(event_about(n, 1));
      }
      model_->source_succeeded("kubernetes", 0.1);
    }
    for (int n = base; n < base + kBatch; ++n) {
      model_->delete_warning_event("ev-" + std::to_string(n));
      model_->delete_job("uid-" + std::to_string(n));
    }
    model_->tick();
  }

  // Every structure is back to what the 500 live jobs need.
  const ModelSizes after = model_->sizes();
  EXPECT_EQ(after.jobs, before.jobs);
  EXPECT_EQ(after.counted_jobs, before.counted_jobs);
  EXPECT_EQ(after.counted_task_ids, before.counted_task_ids);
  EXPECT_EQ(after.warning_events, before.warning_events);
  EXPECT_EQ(after.parked_events, 0u);
  EXPECT_EQ(after.left_out_jobs, 0u);
  EXPECT_EQ(after.jobs, static_cast<std::size_t>(kLive));
  // The state file follows the live set; the totals in it are a few lines.
  const auto state_after = state_size();
  EXPECT_LE(state_after, state_before + state_before / 10 + 16 * 1024)
      << "before " << state_before << " after " << state_after;

  // The counters keep the truth of every job ever seen.
  EXPECT_EQ(total(*model_, "created"), static_cast<std::uint64_t>(kLive + kChurned));
  EXPECT_EQ(total(*model_, "failed"), static_cast<std::uint64_t>(failed));
  EXPECT_EQ(total(*model_, "completed"), static_cast<std::uint64_t>(kChurned - failed));
  EXPECT_EQ(total(*model_, "cancelled"), 0u);
  std::uint64_t durations = 0;
  for (const auto& [key, h] : model_->duration_histograms()) {
    for (auto c : h.counts) durations += c;
  }
  EXPECT_EQ(durations, static_cast<std::uint64_t>(kChurned));
  std::uint64_t queued = 0;
  for (const auto& [gpu, h] : model_->queue_histograms()) {
    for (auto c : h.counts) queued += c;
  }
  EXPECT_EQ(queued, static_cast<std::uint64_t>(kLive + kChurned));
  std::uint64_t i6pn_total = 0;
  for (const auto& [replicas, n] : model_->i6pn_total()) i6pn_total += n;
  EXPECT_EQ(i6pn_total, static_cast<std::uint64_t>(i6pn + (kLive + 6) / 7));
  const auto webhooks = model_->webhook_total();
  ASSERT_EQ(webhooks.size(), 1u);
  EXPECT_EQ(webhooks.begin()->second, webhook + kLive / 5);
  const auto errors = model_->errors_total();
  EXPECT_EQ(errors.at({"BackOff", "operator"}), kLive + kChurned);
  // The live jobs' cold starts survived the restart.
  EXPECT_NE(
      render().find(
          R"(modal_function_cold_starts_total{namespace="ml",job_name="job-1",gpu_type="A100"} 2)"),
      std::string::npos);
}

TEST_F(BoundedStateTest, HistoryOfJobsDeletedWhileDownIsDroppedAfterTheFirstSync) {
  sync(0, 10, "Running");
  for (int n = 0; n < 10; ++n) model_->observe_warning_event(event_about(n, 2));
  ASSERT_TRUE(model_->save_state(path_));
  restart();
  EXPECT_EQ(model_->sizes().counted_jobs, 10u);  // restored, waiting for the sync
  // While the exporter was down, jobs 5..9 and their Events were deleted.
  for (int n = 0; n < 5; ++n) {
    model_->upsert_job(make_job(n, "Running"));
    model_->observe_warning_event(event_about(n, 2));
  }
  model_->source_succeeded("kubernetes", 0.1);
  EXPECT_EQ(model_->sizes().counted_jobs, 5u);
  EXPECT_EQ(model_->sizes().warning_events, 5u);
  // Nothing was counted twice and nothing was lost.
  EXPECT_EQ(total(*model_, "created"), 10u);
  EXPECT_EQ(model_->errors_total().at({"BackOff", "operator"}), 20);
}

TEST_F(BoundedStateTest, StateFileIsDirtyOnlyWhenItsContentChanged) {
  sync(0, 3, "Running");
  clock_ += 3600;  // queue times no longer wait for Modal
  model_->tick();
  ASSERT_TRUE(model_->state_dirty());
  state_size();
  EXPECT_FALSE(model_->state_dirty());
  // Time passing, telemetry and function stats change no history.
  clock_ += 60;
  model_->tick();
  model_->job_telemetry({"uid-1", 0.5, std::nullopt, std::nullopt});
  model_->modal_function_stats({"fu-1", 3, 1, 1});
  model_->upsert_job(make_job(1, "Running"));  // same object again (a resync)
  EXPECT_FALSE(model_->state_dirty());
  model_->upsert_job(make_job(1, "Succeeded"));
  EXPECT_TRUE(model_->state_dirty());
}

// Sharding: every series belongs to exactly one shard, so the shards add up to the fleet.
TEST(ShardingTest, ShardsAddUpAndKeepNoForeignHistory) {
  constexpr int kShards = 3;
  std::vector<std::unique_ptr<Model>> shards;
  for (int s = 0; s < kShards; ++s) {
    Config c;
    c.shard.shard = s;
    c.shard.total_shards = kShards;
    shards.push_back(std::make_unique<Model>(c, [] { return 2000.0; }));
  }
  Model whole(Config{}, [] { return 2000.0; });
  std::vector<Model*> all{&whole};
  for (auto& s : shards) all.push_back(s.get());

  for (Model* m : all) {
    for (int n = 0; n < 300; ++n) {
      m->upsert_job(make_job(n, n % 3 ? "Running" : "Succeeded"));
      m->observe_warning_event(event_about(n, 2));
    }
    WarningEvent about_operator;
    about_operator.uid = "ev-operator";
    about_operator.reason = "OperatorCrash";
    about_operator.about_pod = true;
    about_operator.operator_pod = true;
    about_operator.involved_uid = "operator-pod-uid";
    about_operator.count = 2;
    m->observe_warning_event(about_operator);
    m->set_operator_restarts(4);
    m->modal_apps({{"ap-1", "app", "", 1, 3, std::nullopt, std::nullopt}});
  }
  std::uint64_t created = 0;
  double backoff = 0, crash = 0;
  std::size_t owned = 0, restarts = 0, apps = 0;
  for (auto& s : shards) {
    created += total(*s, "created");
    const auto errors = s->errors_total();
    if (errors.count({"BackOff", "operator"})) backoff += errors.at({"BackOff", "operator"});
    if (errors.count({"OperatorCrash", "operator"}))
      crash += errors.at({"OperatorCrash", "operator"});
    owned += s->owned_jobs();
    restarts += s->operator_restarts().has_value();
    apps += s->apps().size();
    EXPECT_EQ(s->owned_jobs() + s->foreign_jobs(), 300u);
    EXPECT_GT(s->owned_jobs(), 0u);
  }
  EXPECT_EQ(created, total(whole, "created"));
  EXPECT_EQ(owned, whole.owned_jobs());
  EXPECT_EQ(backoff, whole.errors_total().at({"BackOff", "operator"}));
  EXPECT_EQ(crash, 2);
  EXPECT_EQ(restarts, 1u);  // fleet-wide singletons come from shard 0 only
  EXPECT_EQ(apps, 1u);
  // Deleted foreign jobs leave nothing behind.
  for (auto& s : shards) {
    for (int n = 0; n < 300; ++n) s->delete_job("uid-" + std::to_string(n));
    EXPECT_EQ(s->sizes().left_out_jobs, 0u);
    EXPECT_EQ(s->sizes().counted_jobs, 0u);
  }
}

}  // namespace
}  // namespace mx
