// Derivation from model state: counting once per UID, histograms, deletions, the state file.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <optional>
#include <set>

#include "metrics/derivation.h"
#include "model/model.h"
#include "sources/registry.h"

namespace mx {
namespace {

class ModelTest : public ::testing::Test {
 protected:
  ModelTest() : model_(make_config(), [this] { return clock_; }), derivation_(set_) {}

  static Config make_config() {
    Config c;
    c.modal.enabled = false;  // queue time comes from status timestamps unless a test enables Modal
    return c;
  }

  std::string render() {
    derivation_.update(model_);
    return set_.publish(1)->body(ExpositionFormat::text);
  }

  static JobObject job(const std::string& uid, const std::string& phase,
                       const std::string& gpu = "T4", int replicas = 1) {
    JobObject j;
    j.uid = uid;
    j.kind = "ModalJob";
    j.namespace_name = "ml";
    j.name = "job-" + uid;
    j.gpu_type = gpu;
    j.gpu_count = gpu == "none" ? 0 : 1;
    j.replicas = replicas;
    j.phase = phase;
    j.created_at = 1000;
    return j;
  }

  // A Warning Event about a ModalJob in namespace "ml".
  static WarningEvent warning(std::string uid, std::string reason, std::int64_t count) {
    WarningEvent e;
    e.uid = std::move(uid);
    e.namespace_name = "ml";
    e.reason = std::move(reason);
    e.count = count;
    return e;
  }

  // Jobs r0..r<n-1>, running since 1500.
  void add_running_jobs(std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      auto j = job("r" + std::to_string(i), "Running");
      j.started_at = 1500;
      model_.upsert_job(j);
    }
  }

  static bool has(const std::string& text, const std::string& line) {
    return text.find(line + "\n") != std::string::npos;
  }

  double clock_ = 2000;
  Model model_;
  FamilySet set_;
  Derivation derivation_;
};

TEST_F(ModelTest, LifecycleCountsOncePerUid) {
  model_.upsert_job(job("a", "Pending"));
  model_.upsert_job(job("a", "Pending"));
  auto text = render();
  EXPECT_TRUE(has(text, R"(modal_jobs_total{status="created",gpu_type="T4",replicas="1"} 1)"))
      << text;
  // The other statuses of a known GPU type and replica count start at 0, so that rate() sees
  // the first completion.
  for (const char* status : {"completed", "failed", "cancelled"}) {
    EXPECT_TRUE(has(text, std::string(R"(modal_jobs_total{status=")") + status +
                              R"(",gpu_type="T4",replicas="1"} 0)"))
        << status;
  }
  EXPECT_EQ(text.find(R"(gpu_type="A100",replicas="1"})"), std::string::npos);
  EXPECT_TRUE(has(text, R"(modal_jobs_active{gpu_type="T4"} 1)"));
  EXPECT_TRUE(has(text, R"(modal_job_replicas{namespace="ml",job_name="job-a"} 1)"));
  EXPECT_TRUE(
      has(text, R"(modal_job_status_phase{namespace="ml",job_name="job-a",phase="Pending"} 1)"));

  auto running = job("a", "Running");
  running.started_at = 1012;
  model_.upsert_job(running);
  clock_ = 2100;
  text = render();
  EXPECT_TRUE(has(text, R"(modal_job_queue_seconds_bucket{gpu_type="T4",le="10"} 0)")) << text;
  EXPECT_TRUE(has(text, R"(modal_job_queue_seconds_bucket{gpu_type="T4",le="30"} 1)"));
  EXPECT_TRUE(has(text, R"(modal_job_queue_seconds_sum{gpu_type="T4"} 12)"));
  EXPECT_TRUE(has(
      text, R"(modal_job_start_time_seconds{namespace="ml",job_name="job-a",gpu_type="T4"} 1012)"));

  auto done = running;
  done.phase = "Succeeded";
  done.finished_at = 1012 + 45;
  model_.upsert_job(done);
  model_.upsert_job(done);
  text = render();
  EXPECT_TRUE(has(text, R"(modal_jobs_total{status="completed",gpu_type="T4",replicas="1"} 1)"));
  EXPECT_TRUE(has(
      text, R"(modal_job_duration_seconds_bucket{status="completed",gpu_type="T4",le="30"} 0)"));
  EXPECT_TRUE(has(
      text, R"(modal_job_duration_seconds_bucket{status="completed",gpu_type="T4",le="60"} 1)"));
  EXPECT_TRUE(has(text, R"(modal_job_duration_seconds_count{status="completed",gpu_type="T4"} 1)"));
  EXPECT_TRUE(has(text, R"(modal_jobs_active{gpu_type="T4"} 0)"));
  EXPECT_EQ(text.find("modal_job_replicas{"), std::string::npos);  // only active jobs
  EXPECT_EQ(text.find("modal_job_start_time_seconds{"), std::string::npos);
  EXPECT_EQ(text.find("modal_job_queue_seconds_count{gpu_type=\"T4\"} 2"), std::string::npos);

  model_.delete_job("a");  // after a terminal phase: not cancelled
  text = render();
  EXPECT_TRUE(has(text, R"(modal_jobs_total{status="cancelled",gpu_type="T4",replicas="1"} 0)"));
  EXPECT_EQ(text.find("job-a"), std::string::npos);  // per-job series gone
}

TEST_F(ModelTest, DeletedBeforeTerminalIsCancelled) {
  model_.upsert_job(job("b", "Running", "A100-80GB", 2));
  model_.delete_job("b");
  model_.delete_job("b");
  const auto text = render();
  EXPECT_TRUE(
      has(text, R"(modal_jobs_total{status="cancelled",gpu_type="A100-80GB",replicas="2"} 1)"))
      << text;
  EXPECT_EQ(text.find("job-b"), std::string::npos);
}

// A reload replaces the Kubernetes source: a job deleted before the new source listed never
// gets a DELETED event. Its first complete sync must delete what it did not deliver.
TEST_F(ModelTest, AReloadDeletesWhatTheNewSourceNoLongerLists) {
  model_.upsert_job(job("kept", "Running"));
  model_.upsert_job(job("gone", "Running"));
  model_.upsert_job(job("done", "Running"));
  EndpointObject endpoint;
  endpoint.uid = "ep-gone";
  endpoint.namespace_name = "ml";
  endpoint.name = "gone";
  model_.upsert_endpoint(endpoint);
  model_.source_succeeded("kubernetes", 0.1);

  model_.kubernetes_restarted();
  model_.upsert_job(job("kept", "Running"));
  model_.upsert_job(job("done", "Succeeded"));
  auto text = render();
  EXPECT_NE(text.find("job-gone"), std::string::npos) << "deleted before the sync completes";
  model_.source_succeeded("kubernetes", 0.1);
  text = render();
  EXPECT_EQ(text.find("job-gone"), std::string::npos) << text;
  EXPECT_EQ(model_.endpoints().count("ep-gone"), 0u);
  EXPECT_NE(text.find("job-kept"), std::string::npos);
  EXPECT_TRUE(has(text, R"(modal_jobs_total{status="cancelled",gpu_type="T4",replicas="1"} 1)"))
      << text;
  EXPECT_TRUE(has(text, R"(modal_jobs_total{status="completed",gpu_type="T4",replicas="1"} 1)"));

  // Later syncs (re-lists) leave the model to the informers.
  model_.upsert_job(job("late", "Running"));
  model_.source_succeeded("kubernetes", 0.1);
  EXPECT_NE(render().find("job-late"), std::string::npos);
}

TEST_F(ModelTest, FailedWithoutTimestampsUsesSeenTransitions) {
  auto j = job("c", "Running", "none");
  model_.upsert_job(j);  // exporter sees it start at 2000
  clock_ = 2007;
  j.phase = "Failed";
  model_.upsert_job(j);
  const auto text = render();
  EXPECT_TRUE(has(text, R"(modal_jobs_total{status="failed",gpu_type="none",replicas="1"} 1)"));
  EXPECT_TRUE(has(text, R"(modal_job_duration_seconds_sum{status="failed",gpu_type="none"} 7)"))
      << text;
}

TEST_F(ModelTest, I6pnWebhookAndEvents) {
  auto p = job("p", "Pending");
  p.kind = "Pod";
  p.i6pn = true;
  p.replicas = 4;
  p.webhook_mutated = true;
  model_.upsert_job(p);
  model_.upsert_job(p);
  model_.observe_warning_event(warning("e1", "BackOff", 3));
  model_.observe_warning_event(warning("e1", "BackOff", 5));  // grew by 2
  model_.observe_warning_event(warning("e1", "BackOff", 5));  // no growth
  model_.observe_warning_event(warning("e2", "FailedCreate", 1));
  model_.set_operator_restarts(3);
  declare_error_types(model_.config(), model_);  // as the application does at start
  model_.count_error("kubernetes_api", "http_5xx");
  const auto text = render();
  EXPECT_TRUE(has(text, R"(modal_i6pn_jobs_total{replicas="4"} 1)")) << text;
  EXPECT_TRUE(has(text, R"(modal_webhook_requests_total{method="CREATE",status="mutated"} 1)"));
  EXPECT_TRUE(
      has(text, R"(modal_operator_errors_total{error_type="BackOff",component="operator"} 5)"));
  EXPECT_TRUE(has(
      text, R"(modal_operator_errors_total{error_type="FailedCreate",component="operator"} 1)"));
  EXPECT_TRUE(has(
      text, R"(modal_operator_errors_total{error_type="http_5xx",component="kubernetes_api"} 1)"));
  EXPECT_TRUE(has(
      text, R"(modal_operator_errors_total{error_type="timeout",component="kubernetes_api"} 0)"));
  EXPECT_TRUE(has(text, "modal_operator_restarts_total 3"));
}

// Each of these series comes from one source's data: absent before any arrived, present once it
// did.
TEST_F(ModelTest, NoSourceNoSeries) {
  const std::vector<std::string> samples = {
      "modal_operator_restarts_total ", "modal_gpu_utilization{",
      "modal_function_cold_starts_total{", "modal_jobs_total{"};
  auto text = render();
  for (const auto& s : samples) EXPECT_EQ(text.find(s), std::string::npos) << s << "\n" << text;

  // Kubernetes: a running job and the operator's Pod; Modal: the job's tasks; telemetry: its
  // GPU use.
  auto running = job("a", "Running");
  running.started_at = 1500;
  running.modal_app_id = "ap-a";
  model_.upsert_job(running);
  model_.set_operator_restarts(0);
  model_.modal_tasks("ap-a", {{"ta-1", "ap-a", 1400.0, 1500.0}});
  model_.job_telemetry({"a", 0.5, std::nullopt, std::nullopt});
  text = render();
  for (const auto& s : samples) EXPECT_NE(text.find(s), std::string::npos) << s << "\n" << text;
}

TEST_F(ModelTest, TheRunningTotalCostFollowsTheClockOnceAMinute) {
  auto j = job("c", "Running");
  j.started_at = 1500;
  model_.upsert_job(j);
  auto value_of = [](const std::string& text, const std::string& period) {
    const std::string label = "time_period=\"" + period + "\"} ";
    const auto at = text.find(label);
    EXPECT_NE(at, std::string::npos) << period << " in\n" << text;
    return at == std::string::npos ? -1.0 : std::stod(text.substr(at + label.size()));
  };
  auto text = render();
  const double hourly = value_of(text, "hourly");
  ASSERT_GT(hourly, 0);
  EXPECT_NEAR(value_of(text, "total"), hourly * 500 / 3600, 1e-6);
  for (int tick = 0; tick < 12; ++tick) {
    clock_ += 5;
    model_.tick();
  }
  text = render();
  EXPECT_NEAR(value_of(text, "total"), hourly * 560 / 3600, hourly * 5 / 3600)
      << "refreshed within the minute, at most one tick late";
  EXPECT_EQ(value_of(text, "hourly"), hourly);
}

// A tick's refreshes re-compress few chunks: the jobs refreshed together share their snapshot
// chunks (common/object_hash.h), so the cost family's other chunks stay the previous
// snapshot's own. Refresh moments unrelated to chunks touched every chunk on every tick. And
// only the total's chunks: the rate and today's bill sit in chunks of their own.
TEST_F(ModelTest, ATicksCostRefreshesTouchFewChunks) {
  constexpr std::size_t kJobs = 8000;
  add_running_jobs(kJobs);
  derivation_.update(model_);
  auto before = set_.publish(1);
  std::size_t most_changed = 0;
  std::size_t cost_chunks = 0;
  for (int tick = 0; tick < 12; ++tick) {  // one minute of 5 s ticks
    clock_ += 5;
    model_.tick();
    derivation_.update(model_);
    auto after = set_.publish(1);
    const auto& old_pieces = before->plain(ExpositionFormat::text);
    std::set<const std::string*> kept;
    for (const auto& piece : old_pieces) kept.insert(piece.get());
    std::size_t changed = 0;
    cost_chunks = 0;
    for (const auto& piece : after->plain(ExpositionFormat::text)) {
      if (piece->find("time_period=\"total\"") == std::string::npos) continue;
      ++cost_chunks;
      if (kept.count(piece.get())) continue;
      ++changed;
      // The rate and today's bill do not move with time: their chunks are not re-compressed.
      EXPECT_EQ(piece->find("time_period=\"hourly\""), std::string::npos);
    }
    most_changed = std::max(most_changed, changed);
    before = after;
  }
  ASSERT_GE(cost_chunks, 16u) << "too few chunks for the test to mean anything";
  EXPECT_LE(most_changed, cost_chunks / 4) << "of " << cost_chunks << " cost chunks";
}

// A telemetry scrape re-renders the job's telemetry series only, and only when a value changed:
// the snapshot's other chunks stay the previous one's.
TEST_F(ModelTest, ATelemetryScrapeReRendersOnlyTheTelemetrySeries) {
  constexpr std::size_t kJobs = 2000;
  add_running_jobs(kJobs);
  for (std::size_t i = 0; i < kJobs; i += 10) {
    model_.job_telemetry({"r" + std::to_string(i), 0.5, 10.0, 2.0});
  }
  derivation_.update(model_);
  auto before = set_.publish(1);

  // The same values again: nothing to render.
  for (std::size_t i = 0; i < kJobs; i += 10) {
    model_.job_telemetry({"r" + std::to_string(i), 0.5, 10.0, 2.0});
  }
  EXPECT_TRUE(model_.take_dirty_telemetry().empty());
  EXPECT_FALSE(model_.has_dirty_jobs());

  // New values for every endpoint: only chunks with telemetry lines are new.
  for (std::size_t i = 0; i < kJobs; i += 10) {
    model_.job_telemetry({"r" + std::to_string(i), 0.75, 11.0, 2.5});
  }
  EXPECT_FALSE(model_.has_dirty_jobs());
  derivation_.update(model_);
  auto after = set_.publish(1);
  std::set<const std::string*> kept;
  for (const auto& piece : before->plain(ExpositionFormat::text)) kept.insert(piece.get());
  std::size_t changed = 0;
  for (const auto& piece : after->plain(ExpositionFormat::text)) {
    if (kept.count(piece.get())) continue;
    ++changed;
    for (std::string_view line : {"modal_job_info{", "modal_cost_estimate_usd{",
                                  "modal_job_status_phase{", "modal_job_replicas{"}) {
      EXPECT_EQ(piece->find(line), std::string::npos) << line << " re-rendered";
    }
  }
  EXPECT_GT(changed, 0u);
  const std::string text = after->body(ExpositionFormat::text);
  EXPECT_NE(text.find(R"(modal_gpu_utilization{namespace="ml",job_name="job-r10",)"),
            std::string::npos);
  EXPECT_NE(text.find("} 0.75\n"), std::string::npos);

  // An endpoint that stopped answering: its series go, with the job's others untouched.
  model_.forget_job_telemetry("r10");
  EXPECT_FALSE(model_.has_dirty_jobs());
  derivation_.update(model_);
  const std::string gone = set_.publish(1)->body(ExpositionFormat::text);
  EXPECT_EQ(gone.find(R"(modal_gpu_utilization{namespace="ml",job_name="job-r10",)"),
            std::string::npos);
  EXPECT_NE(gone.find(R"(modal_job_info{namespace="ml",job_name="job-r10",)"), std::string::npos);
}

TEST_F(ModelTest, EndpointsAndDuplicateNames) {
  model_.upsert_endpoint({"e", "ml", "api", "ap-1", 2});
  auto first = job("u1", "Running");
  auto second = job("u2", "Running");
  second.name = first.name;  // same namespace/name, different object
  model_.upsert_job(first);
  model_.upsert_job(second);
  auto text = render();
  EXPECT_TRUE(has(text, R"(modal_endpoint_ready_replicas{namespace="ml",endpoint="api"} 2)"));
  EXPECT_EQ(text.find("uid=\"u2\""), std::string::npos);  // no duplicate label sets
  EXPECT_NE(text.find("uid=\"u1\""), std::string::npos);
  model_.delete_job("u1");
  text = render();
  EXPECT_NE(text.find("uid=\"u2\""), std::string::npos);  // the name passes to the other job
  model_.delete_endpoint("e");
  EXPECT_EQ(render().find("modal_endpoint_ready_replicas{"), std::string::npos);
}

TEST_F(ModelTest, StateFileSurvivesRestartWithoutDoubleCounting) {
  const std::string path = ::testing::TempDir() + "/state.json";
  auto j = job("s", "Running");
  j.started_at = 1003;
  j.i6pn = true;
  model_.upsert_job(j);
  ASSERT_TRUE(model_.save_state(path));

  Model restarted(make_config(), [this] { return clock_; });
  ASSERT_TRUE(restarted.load_state(path));
  restarted.upsert_job(j);  // the re-list after a restart sees the same job
  FamilySet set;
  Derivation d(set);
  d.update(restarted);
  const auto text = set.publish(1)->body(ExpositionFormat::text);
  EXPECT_TRUE(has(text, R"(modal_jobs_total{status="created",gpu_type="T4",replicas="1"} 1)"))
      << text;
  EXPECT_TRUE(has(text, R"(modal_job_queue_seconds_count{gpu_type="T4"} 1)"));
  EXPECT_TRUE(has(text, R"(modal_i6pn_jobs_total{replicas="1"} 1)"));
}

TEST_F(ModelTest, ColdStartsOfAFinishedJobSurviveARestart) {
  const std::string path = ::testing::TempDir() + "/cold-state.json";
  auto j = job("c", "Succeeded");
  j.modal_app_id = "ap-c";
  model_.upsert_job(j);
  model_.modal_tasks("ap-c", {{"ta-1", "ap-c", 1001.0, 1002.0}, {"ta-2", "ap-c", 1003.0, 1004.0}});
  ASSERT_TRUE(model_.save_state(path));

  // Only active jobs' tasks are polled, so after the restart nothing lists this job's tasks.
  Model restarted(make_config(), [this] { return clock_; });
  ASSERT_TRUE(restarted.load_state(path));
  restarted.upsert_job(j);
  FamilySet set;
  Derivation d(set);
  d.update(restarted);
  const auto text = set.publish(1)->body(ExpositionFormat::text);
  EXPECT_TRUE(has(
      text, R"(modal_function_cold_starts_total{namespace="ml",job_name="job-c",gpu_type="T4"} 2)"))
      << text;
}

TEST_F(ModelTest, WarningEventsCountOnlyForPodsTheOperatorManages) {
  auto pod_warning = [](std::string uid, std::string pod, std::int64_t count, bool op = false) {
    WarningEvent e = warning(std::move(uid), "BackOff", count);
    e.about_pod = true;
    e.pod_name = std::move(pod);
    e.operator_pod = op;
    return e;
  };
  const std::string series =
      R"(modal_operator_errors_total{error_type="BackOff",component="operator"} )";
  model_.observe_warning_event(pod_warning("e1", "unrelated-web-pod", 7));
  model_.observe_warning_event(
      pod_warning("e2", "job-p", 2));  // the offloaded Pod is not known yet
  EXPECT_EQ(render().find(R"(error_type="BackOff",component="operator")"), std::string::npos);
  auto p = job("p", "Pending");
  p.kind = "Pod";
  model_.upsert_job(p);  // its parked Event counts now
  EXPECT_TRUE(has(render(), series + "2")) << render();
  model_.observe_warning_event(pod_warning("e2", "job-p", 3));
  model_.observe_warning_event(pod_warning("e3", "modal-operator-0", 1, /*operator_pod=*/true));
  model_.observe_warning_event(pod_warning("e1", "unrelated-web-pod", 9));
  EXPECT_TRUE(has(render(), series + "4")) << render();
  model_.delete_warning_event("e1");  // parked, then gone: never counted
  auto ghost = job("q", "Pending");
  ghost.kind = "Pod";
  ghost.name = "unrelated-web-pod";
  model_.upsert_job(ghost);
  EXPECT_TRUE(has(render(), series + "4")) << render();
}

TEST_F(ModelTest, WarningEventCountsSurviveARestart) {
  const std::string path = ::testing::TempDir() + "/events-state.json";
  model_.observe_warning_event(warning("e1", "ModalJobFailed", 4));
  ASSERT_TRUE(model_.save_state(path));
  Model restarted(make_config(), [this] { return clock_; });
  ASSERT_TRUE(restarted.load_state(path));
  restarted.observe_warning_event(warning("e1", "ModalJobFailed", 5));  // re-listed, grew by 1
  FamilySet set;
  Derivation d(set);
  d.update(restarted);
  const auto text = set.publish(1)->body(ExpositionFormat::text);
  EXPECT_TRUE(has(
      text, R"(modal_operator_errors_total{error_type="ModalJobFailed",component="operator"} 5)"))
      << text;
}

TEST_F(ModelTest, CorruptOrMissingStateFileStartsFresh) {
  const std::string path = ::testing::TempDir() + "/corrupt.json";
  std::ofstream(path) << "{\"version\":1,\"jobs\":{\"x\":{\"statuses\":\"oops\"}}}";
  EXPECT_FALSE(model_.load_state(path));
  EXPECT_FALSE(model_.load_state(path + ".missing"));
  model_.upsert_job(job("n", "Pending"));
  EXPECT_TRUE(has(render(), R"(modal_jobs_total{status="created",gpu_type="T4",replicas="1"} 1)"));
}

TEST_F(ModelTest, ModalTasksGiveColdStartsAndQueueTime) {
  Config c = make_config();
  c.modal.enabled = true;
  clock_ = 1101;
  Model m(c, [this] { return clock_; });
  auto j = job("m", "Running");
  j.modal_app_id = "ap-1";
  j.started_at = 1100;  // status says 100 s after creation ...
  m.upsert_job(j);
  FamilySet set;
  Derivation d(set);
  d.update(m);
  auto text = set.publish(1)->body(ExpositionFormat::text);
  EXPECT_EQ(text.find("modal_job_queue_seconds_count"), std::string::npos);  // waits for Modal
  EXPECT_EQ(text.find("modal_function_cold_starts_total{"), std::string::npos);
  // ... but Modal says the container queued 4 s.
  m.modal_tasks("ap-1", {{"ta-1", "ap-1", 1090.0, 1094.0}, {"ta-2", "ap-1", 1095.0, 1096.0}});
  m.modal_tasks("ap-1", {{"ta-1", "ap-1", 1090.0, 1094.0}});
  // A server that ignores the app filter lists another app's task too: not ours.
  m.modal_tasks("ap-1", {{"ta-1", "ap-1", 1090.0, 1094.0}, {"ta-9", "ap-2", 1000.0, 1001.0}});
  d.update(m);
  text = set.publish(1)->body(ExpositionFormat::text);
  EXPECT_TRUE(has(text, R"(modal_job_queue_seconds_sum{gpu_type="T4"} 4)")) << text;
  EXPECT_TRUE(
      has(text,
          R"(modal_function_cold_starts_total{namespace="ml",job_name="job-m",gpu_type="T4"} 2)"));
}

// A job whose status has no finish time: its duration waits for Modal's finish time of its
// tasks, which the Modal source asks once the job has ended (a listed task is still running).
class DurationWaitTest : public ModelTest {
 protected:
  static Config modal_config() {
    Config c = make_config();
    c.modal.enabled = true;  // tasks_interval 15 s: the wait's grace is 30 s
    return c;
  }

  // Job "w" (app ap-1), seen running at 2000 with two Modal tasks started at 1990 and 1995,
  // then reported Completed at 2100 without status times.
  void run_and_end() {
    auto j = job("w", "Running");
    j.modal_app_id = "ap-1";
    m_.upsert_job(j);
    m_.modal_tasks("ap-1", {{"ta-1", "ap-1", 1985.0, 1990.0}, {"ta-2", "ap-1", 1986.0, 1995.0}});
    EXPECT_TRUE(m_.ended_task_ids().empty());  // running: nothing to ask
    clock_ = 2100;
    j.phase = "Completed";
    const auto version = m_.ended_tasks_version();
    m_.upsert_job(j);
    EXPECT_NE(m_.ended_tasks_version(), version);
  }

  std::string text() {
    derivation_m_.update(m_);
    return set_m_.publish(1)->body(ExpositionFormat::text);
  }

  Model m_{modal_config(), [this] { return clock_; }};
  FamilySet set_m_;
  Derivation derivation_m_{set_m_};
};

TEST_F(DurationWaitTest, ObservedWithModalTimesOnceEveryTaskAnswered) {
  run_and_end();
  EXPECT_EQ(m_.ended_task_ids(), (std::vector<std::string>{"ta-1", "ta-2"}));
  EXPECT_EQ(text().find("modal_job_duration_seconds_count"), std::string::npos);  // waits
  clock_ = 2105;
  m_.modal_task_info({"ta-1", "ap-1", 1985.0, 1990.0, 2080.0, "T4", 1, 1});
  EXPECT_EQ(text().find("modal_job_duration_seconds_count"), std::string::npos);  // one more
  m_.modal_task_info({"ta-2", "ap-1", 1986.0, 1995.0, 2090.0, "T4", 1, 1});
  // Modal's times: the earliest task start to the latest task finish.
  EXPECT_TRUE(
      has(text(), R"(modal_job_duration_seconds_sum{status="completed",gpu_type="T4"} 100)"))
      << text();
  EXPECT_TRUE(m_.ended_task_ids().empty());
  m_.tick();
  EXPECT_TRUE(
      has(text(), R"(modal_job_duration_seconds_count{status="completed",gpu_type="T4"} 1)"));
}

TEST_F(DurationWaitTest, FallsBackToTheSeenEndWhenTheWaitRunsOut) {
  run_and_end();
  clock_ = 2120;
  m_.tick();
  EXPECT_EQ(text().find("modal_job_duration_seconds_count"), std::string::npos);
  clock_ = 2140;  // 40 s after the end: past the grace
  m_.tick();
  // Seen running at 2000, seen ended at 2100: the wait does not lengthen the job.
  EXPECT_TRUE(
      has(text(), R"(modal_job_duration_seconds_sum{status="completed",gpu_type="T4"} 100)"))
      << text();
  EXPECT_TRUE(m_.ended_task_ids().empty());
  // An answer after the observation changes nothing.
  m_.modal_task_info({"ta-1", "ap-1", 1985.0, 1990.0, 2030.0, "T4", 1, 1});
  m_.modal_task_info({"ta-2", "ap-1", 1986.0, 1995.0, 2040.0, "T4", 1, 1});
  EXPECT_TRUE(
      has(text(), R"(modal_job_duration_seconds_count{status="completed",gpu_type="T4"} 1)"));
}

TEST_F(DurationWaitTest, ADeletedJobIsObservedWithWhatIsKnown) {
  run_and_end();
  m_.modal_task_info({"ta-1", "ap-1", 1985.0, 1990.0, 2060.0, "T4", 1, 1});
  clock_ = 2110;
  m_.delete_job("w");
  EXPECT_TRUE(has(text(), R"(modal_job_duration_seconds_sum{status="completed",gpu_type="T4"} 70)"))
      << text();
  EXPECT_TRUE(m_.ended_task_ids().empty());
}

TEST_F(DurationWaitTest, StatusTimesNeedNoWait) {
  auto j = job("s", "Running");
  j.modal_app_id = "ap-1";
  j.started_at = 1900;
  m_.upsert_job(j);
  m_.modal_tasks("ap-1", {{"ta-1", "ap-1", 1885.0, 1890.0}});
  j.phase = "Completed";
  j.finished_at = 1960;
  m_.upsert_job(j);
  EXPECT_TRUE(m_.ended_task_ids().empty());
  EXPECT_TRUE(has(text(), R"(modal_job_duration_seconds_sum{status="completed",gpu_type="T4"} 60)"))
      << text();
}

TEST_F(ModelTest, HourlyCostFromPriceTableAndRates) {
  auto j = job("h", "Running", "A100-80GB", 2);
  j.gpu_count = 2;
  j.cpu_cores = 4;
  j.memory_gib = 16;
  // (2.4984 * 2 GPUs + 0.04716 * 4 cores + 0.007992 * 16 GiB) * 2 replicas
  EXPECT_NEAR(model_.hourly_cost(j), (2.4984 * 2 + 0.04716 * 4 + 0.007992 * 16) * 2, 1e-9);
  model_.modal_rates(
      {{{"A100-80GB", 3'000'000'000}}});  // $3/h from Modal wins; CPU/memory fall back
  EXPECT_NEAR(model_.hourly_cost(j), (3.0 * 2 + 0.04716 * 4 + 0.007992 * 16) * 2, 1e-9);
}

TEST_F(ModelTest, MaxJobsDropsAndCounts) {
  Config c = make_config();
  c.limits.max_jobs = 1;
  Model m(c, [this] { return clock_; });
  m.upsert_job(job("1", "Pending"));
  m.upsert_job(job("2", "Pending"));
  m.upsert_job(job("2", "Running"));
  FamilySet set;
  Derivation d(set);
  d.update(m);
  const auto text = set.publish(1)->body(ExpositionFormat::text);
  EXPECT_TRUE(has(text, R"(modal_exporter_dropped_jobs_total{reason="max_jobs"} 1)")) << text;
  EXPECT_TRUE(has(text, R"(modal_jobs_active{gpu_type="T4"} 1)"));
}

// One Modal answer for every kind of round, about jobs m0..m<n-1> (app ap-<i>, function
// fu-<i>); `bump` changes every answer about job m<bump> and nothing else.
struct ModalRound {
  std::vector<ModalApp> apps;
  std::map<std::string, std::vector<ModalTask>> tasks;
  std::vector<ModalTaskInfo> task_infos;
  std::vector<ModalFunctionStats> stats;
  BillingReport daily{"d", 0, 0, {}};
  BillingReport hourly{"h", 0, 0, {}};
  BillingRates rates{{{"cpu", 40'000'000}, {"t4", 590'000'000}}};

  static ModalRound make(std::size_t n, std::optional<std::size_t> bump = std::nullopt) {
    ModalRound r;
    for (std::size_t i = 0; i < n; ++i) {
      const std::string id = std::to_string(i);
      const bool b = bump == i;
      const std::string app = "ap-" + id;
      r.apps.push_back({app, "job-m" + id, "", 1, b ? 2 : 1, 1400.0, std::nullopt});
      r.tasks[app].push_back({"ta-" + id, app, 1400.0, 1450.0});
      if (b) r.tasks[app].push_back({"ta-" + id + "-b", app, 1460.0, 1470.0});
      r.task_infos.push_back({"ta-" + id, app, 1400.0, 1450.0, std::nullopt, "T4", 1, 0});
      r.stats.push_back({"fu-" + id, b ? 7u : 3u, 1, 1});
      r.daily.items.push_back({app, 0, b ? 3'000'000'000 : 2'000'000'000, {{"T4", 1}}});
      r.hourly.items.push_back({app, 3600, 1'000'000'000, {{"T4", b ? 2 : 1}}});
    }
    return r;
  }

  // In the order the Modal source's rounds and budget deliver them.
  void deliver(Model& m, double end) const {
    m.modal_apps(apps);
    for (const auto& [app, list] : tasks) m.modal_tasks(app, list);
    for (const auto& info : task_infos) m.modal_task_info(info);
    for (const auto& s : stats) m.modal_function_stats(s);
    // Each round asks for a window ending now: the report's bounds move, its rows do not.
    auto d = daily;
    auto h = hourly;
    d.end = h.end = end;
    m.modal_billing(d);
    m.modal_billing(h);
    m.modal_rates(rates);
  }
};

class ModalRoundTest : public ModelTest {
 protected:
  static constexpr std::size_t kJobs = 4;

  void SetUp() override {
    for (std::size_t i = 0; i < kJobs; ++i) {
      auto j = job("m" + std::to_string(i), "Running");
      j.started_at = 1500;
      j.modal_app_id = "ap-" + std::to_string(i);
      j.modal_function_id = "fu-" + std::to_string(i);
      model_.upsert_job(j);
    }
    ModalRound::make(kJobs).deliver(model_, clock_);
    render();  // drains every dirty mark
    model_.set_on_change([this](Model::Urgency) { ++changes_; });
  }

  // The derivation's changes since the last render: object key -> the lines it now contributes.
  std::map<std::string, std::string> changed_objects() {
    derivation_.update(model_);
    std::map<std::string, std::string> objects;
    const auto batch = set_.take_changes();
    for (const auto& c : batch.changes()) objects[std::string(batch.key(c))] += batch.lines(c);
    return objects;
  }

  int changes_ = 0;
};

// What the pollers bring may wait for the next publish within a second; a Kubernetes change is
// published at once (Application::schedule_publish).
TEST_F(ModalRoundTest, PolledAnswersAskForAPublishSoonKubernetesChangesAtOnce) {
  std::vector<Model::Urgency> asked;
  model_.set_on_change([&](Model::Urgency u) { asked.push_back(u); });
  clock_ += 15;
  ModalRound::make(kJobs, 1).deliver(model_, clock_);
  model_.job_telemetry({"m0", 0.5, std::nullopt, std::nullopt});
  model_.count_error("modal_api", "grpc_unavailable");
  ASSERT_FALSE(asked.empty());
  for (const auto u : asked) EXPECT_EQ(u, Model::Urgency::soon);
  asked.clear();
  auto j = job("m1", "Running");
  j.started_at = 1500;
  j.modal_app_id = "ap-1";
  j.replicas = 3;
  model_.upsert_job(j);
  model_.delete_job("m2");
  EXPECT_EQ(asked, (std::vector<Model::Urgency>{Model::Urgency::now, Model::Urgency::now}));
}

// A round whose answers equal the previous round's moves nothing: no job, app, aggregate or
// cost is marked dirty, no publish is asked for, and the derivation hands over no change (so
// the publisher builds no snapshot).
TEST_F(ModalRoundTest, AnUnchangedRoundPublishesNothing) {
  clock_ += 15;
  ModalRound::make(kJobs).deliver(model_, clock_);
  EXPECT_EQ(changes_, 0);
  EXPECT_FALSE(model_.has_dirty_jobs());
  EXPECT_TRUE(model_.take_dirty_apps().empty());
  EXPECT_FALSE(model_.take_dirty_app_costs());
  EXPECT_FALSE(model_.take_dirty_aggregates());
  derivation_.update(model_);
  EXPECT_FALSE(set_.has_changes());
}

// A round in which one app's answers changed re-renders that app's job and that app, nothing of
// the other jobs and apps.
TEST_F(ModalRoundTest, OneChangedAppReRendersItsJobOnly) {
  clock_ += 15;
  ModalRound::make(kJobs, 2).deliver(model_, clock_);
  EXPECT_GT(changes_, 0);
  const auto objects = changed_objects();
  ASSERT_TRUE(objects.contains("m2"));
  ASSERT_TRUE(objects.contains("ap-2"));
  for (std::size_t i = 0; i < kJobs; ++i) {
    if (i == 2) continue;
    EXPECT_FALSE(objects.contains("m" + std::to_string(i))) << i;
    EXPECT_FALSE(objects.contains("ap-" + std::to_string(i))) << i;
  }
  EXPECT_TRUE(
      has(objects.at("ap-2"), R"(modal_app_running_tasks{app_id="ap-2",app_name="job-m2"} 2)"))
      << objects.at("ap-2");
  EXPECT_TRUE(
      has(objects.at("m2"), R"(modal_function_backlog{namespace="ml",job_name="job-m2"} 7)"))
      << objects.at("m2");
  EXPECT_TRUE(
      has(objects.at("m2"),
          R"(modal_function_cold_starts_total{namespace="ml",job_name="job-m2",gpu_type="T4"} 2)"))
      << objects.at("m2");
}

// The Modal source re-reads the jobs' app and function ids only when this version moves: it must
// move with every change of those lists, and only then.
TEST_F(ModelTest, JobIdsVersionMovesWithTheModalIdLists) {
  auto version = [this] { return model_.job_ids_version().value(); };
  auto j = job("v", "Running");
  j.modal_app_id = "ap-v";
  auto last = version();
  model_.upsert_job(j);
  EXPECT_NE(version(), last);
  last = version();
  j.replicas = 3;  // nothing the lists show
  model_.upsert_job(j);
  EXPECT_EQ(version(), last);
  j.modal_function_id = "fu-v";
  model_.upsert_job(j);
  EXPECT_NE(version(), last);
  last = version();
  j.phase = "Succeeded";  // no longer active: leaves the TaskList targets
  model_.upsert_job(j);
  EXPECT_NE(version(), last);
  last = version();
  model_.delete_job("v");
  EXPECT_NE(version(), last);
}

}  // namespace
}  // namespace mx
