// The Modal source, the model, the derivation and the publisher together against the fake Modal
// server: rounds whose answers repeat the previous ones build no snapshot; a change to one app's
// answers re-renders that app and its job only; the rounds about jobs wait for the first LIST.
#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "exposition/publisher.h"
#include "fake_modal_server.h"
#include "metrics/derivation.h"
#include "model/model.h"
#include "sources/modal/modal_source.h"

namespace mx {
namespace {

using namespace std::chrono_literals;
using testing::FakeModalServer;
namespace pb = ::modal::client;

constexpr int kJobs = 4;

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

pb::AppListResponse::AppListItem app_item(int i, int running) {
  pb::AppListResponse::AppListItem app;
  app.set_app_id("ap-" + std::to_string(i));
  app.set_name("job-" + std::to_string(i));
  app.set_state(pb::APP_STATE_DEPLOYED);
  app.set_created_at(1700000000);
  app.set_n_running_tasks(running);
  return app;
}

pb::WorkspaceBillingReportItem billing_item(int i, std::int64_t interval) {
  pb::WorkspaceBillingReportItem item;
  item.set_object_id("ap-" + std::to_string(i));
  item.mutable_interval()->set_seconds(interval);
  item.set_cost("0.25");
  (*item.mutable_cost_by_resource())["T4"] = "0.25";
  return item;
}

pb::EnvironmentListItem environment_item(const std::string& name, int gpus) {
  pb::EnvironmentListItem e;
  e.set_name(name);
  e.set_environment_id("en-" + name);
  e.set_max_concurrent_gpus(8);
  e.set_current_concurrent_gpus(gpus);
  e.set_effective_cycle_spend_limit(500);
  e.set_current_cycle_usage(120);
  return e;
}

// Job i runs app ap-i, function fu-i.
JobObject running_job(int i) {
  const std::string id = std::to_string(i);
  JobObject job;
  job.uid = "m" + id;
  job.kind = "ModalJob";
  job.namespace_name = "ml";
  job.name = "job-" + id;
  job.gpu_type = "T4";
  job.gpu_count = 1;
  job.phase = "Running";
  job.created_at = 90;
  job.started_at = 100;
  job.modal_app_id = "ap-" + id;
  job.modal_function_id = "fu-" + id;
  return job;
}

Config make_config(const std::string& server_url) {
  Config c;
  // The jobs are put into the model by hand: no Kubernetes source, whose first LIST the Modal
  // rounds would wait for.
  c.kubernetes.enabled = false;
  c.modal.enabled = true;
  c.modal.server_url = server_url;
  c.modal.environment = "main";
  c.modal.call_timeout = 5s;
  c.modal.apps_interval = 30ms;
  c.modal.tasks_interval = 30ms;
  c.modal.stats_interval = 30ms;
  c.modal.billing_interval = 30ms;
  c.modal.rates_interval = 30ms;
  c.modal.environments_interval = 30ms;
  c.modal.max_calls_per_second = 1000;
  return c;
}

class ModalPublishTest : public ::testing::Test {
 protected:
  ModalPublishTest() : config_(make_config(fake_.address())), model_(config_) {
    setenv("MODAL_TOKEN_ID", FakeModalServer::kDefaultTokenId, 1);
    setenv("MODAL_TOKEN_SECRET", FakeModalServer::kDefaultTokenSecret, 1);
    const std::int64_t now = unix_now();
    std::vector<pb::AppListResponse::AppListItem> apps;
    std::vector<pb::WorkspaceBillingReportItem> daily, hourly;
    for (int i = 0; i < kJobs; ++i) {
      const std::string id = std::to_string(i);
      fake_.add_job(id, 3);
      apps.push_back(app_item(i, 1));
      daily.push_back(billing_item(i, now - now % 86400 - 86400));
      hourly.push_back(billing_item(i, now - now % 3600 - 2 * 3600));

      model_.upsert_job(running_job(i));
    }
    fake_.set_apps(apps);
    fake_.set_billing_items("d", daily);
    fake_.set_billing_items("h", hourly);
    fake_.set_rates({{"cpu", "0.04"}, {"T4", "0.59"}});
    fake_.set_environments({environment_item("main", 7), environment_item("dev", 0)});
    pb::EnvironmentBillingSummaryResponse summary;
    summary.set_metered_cost("12.5");
    (*summary.mutable_metered_cost_breakdown())["deployed"] = "12.5";
    fake_.set_environment_billing("en-main", summary);
    fake_.refuse_environment_billing("en-dev", grpc::StatusCode::PERMISSION_DENIED);

    model_.set_on_change([this](Model::Urgency) { publish_wanted_ = true; });
    publisher_ = std::make_unique<Publisher>(families_.families(), 1, registry_);
    publish();
  }

  ~ModalPublishTest() override {
    source_.reset();
    publisher_.reset();
    unsetenv("MODAL_TOKEN_ID");
    unsetenv("MODAL_TOKEN_SECRET");
  }

  // Starts the source and runs until everything Modal knows is in (each job's task and function
  // stats, both billing reports, the rates) and published; returns the snapshots built so far.
  double start_and_settle() {
    source_ = std::make_unique<ModalSource>(io_, config_.modal, config_.backoff, model_, model_);
    source_->start();
    EXPECT_TRUE(run_rounds({}, 3)) << ::testing::PrintToString(fake_.call_counts());
    EXPECT_TRUE(run_until([&] { return fake_.call_count("FunctionGetCurrentStats") >= kJobs; }));
    EXPECT_TRUE(run_rounds(fake_.call_counts(), 1));
    return builds();
  }

  // What the application does after a change: render what is dirty, hand it to the publisher.
  void publish() {
    derivation_.update(model_);
    if (!families_.has_changes()) return;
    auto batch = families_.take_changes();
    for (const auto& c : batch.changes()) published_keys_.emplace(batch.key(c));
    publisher_->submit(std::move(batch), 1);
  }

  // Drives the io_context (publishing as the application does) until `pred` holds.
  template <typename Pred>
  bool run_until(Pred pred) {
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    for (; !pred(); io_.run_for(5ms)) {
      if (std::exchange(publish_wanted_, false)) publish();
      if (std::chrono::steady_clock::now() > deadline) return false;
    }
    return true;
  }

  // Until every poll round and the budget's calls have run `rounds` more times than in `since`.
  bool run_rounds(const std::map<std::string, int>& since, int rounds) {
    const std::map<std::string, int> want = {{"AppList", rounds},
                                             {"TaskList", rounds},
                                             {"WorkspaceBillingReport", 2 * rounds},
                                             {"WorkspaceBillingRates", rounds},
                                             {"EnvironmentList", rounds},
                                             {"EnvironmentBillingSummary", 2 * rounds},
                                             {"FunctionGetCurrentStats", kJobs * rounds}};
    return run_until([&] {
      const auto counts = fake_.call_counts();
      for (const auto& [method, n] : want) {
        auto before = since.find(method);
        auto now = counts.find(method);
        const int base = before == since.end() ? 0 : before->second;
        if (now == counts.end() || now->second < base + n) return false;
      }
      return true;
    });
  }

  // The text body of the current snapshot, after publishing what is pending.
  std::string body() {
    if (std::exchange(publish_wanted_, false)) publish();
    publisher_->flush();
    return publisher_->current()->body(ExpositionFormat::text);
  }

  // Snapshots built so far, after publishing what is pending.
  double builds() {
    if (std::exchange(publish_wanted_, false)) publish();
    publisher_->flush();
    for (const auto& family : registry_.Collect()) {
      if (family.name == "modal_exporter_snapshot_builds_total")
        return family.metric.at(0).counter.value;
    }
    return -1;
  }

  FakeModalServer fake_;
  Config config_;
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_{
      io_.get_executor()};
  Model model_;
  FamilySet families_;
  Derivation derivation_{families_};
  prometheus::Registry registry_;
  std::unique_ptr<Publisher> publisher_;
  bool publish_wanted_ = false;
  std::set<std::string> published_keys_;
  std::unique_ptr<ModalSource> source_;  // last: stopped first
};

TEST_F(ModalPublishTest, RoundsWithUnchangedAnswersBuildNoSnapshot) {
  const double before = start_and_settle();
  ASSERT_GT(before, 1);
  ASSERT_TRUE(model_.cold_starts("m0").has_value());
  ASSERT_TRUE(model_.billing_hourly().has_value());

  ASSERT_TRUE(run_rounds(fake_.call_counts(), 3));
  EXPECT_EQ(builds(), before) << "a round with the same answers built a snapshot";
}

TEST_F(ModalPublishTest, OneChangedAppRebuildsOnlyItsObjects) {
  const double before = start_and_settle();
  published_keys_.clear();

  // App 2 now runs two tasks and its function has a backlog of 9.
  std::vector<pb::AppListResponse::AppListItem> apps;
  for (int i = 0; i < kJobs; ++i) apps.push_back(app_item(i, i == 2 ? 2 : 1));
  fake_.set_apps(apps);
  pb::FunctionStats stats;
  stats.set_backlog(9);
  fake_.set_function_stats("fu-2", stats);
  ASSERT_TRUE(run_rounds(fake_.call_counts(), 3));

  EXPECT_GT(builds(), before);
  EXPECT_EQ(published_keys_, (std::set<std::string>{"ap-2", "m2"}));
}

// A change of an environment's GPU count reaches the exposition with the next EnvironmentList
// round: one environments_interval, not a billing_interval or a restart.
TEST_F(ModalPublishTest, AChangedGpuCountShowsWithTheNextEnvironmentList) {
  start_and_settle();
  const std::string before = R"(modal_environment_concurrent_gpus{environment="main"} 7)";
  const std::string after = R"(modal_environment_concurrent_gpus{environment="main"} 8)";
  ASSERT_NE(body().find(before), std::string::npos) << body();
  EXPECT_NE(
      body().find(R"(modal_environment_metered_cost_usd{environment="main",category="all"} 12.5)"),
      std::string::npos);
  EXPECT_EQ(body().find(R"(modal_environment_metered_cost_usd{environment="dev")"),
            std::string::npos);

  const int lists = fake_.call_count("EnvironmentList");
  fake_.set_environments({environment_item("main", 8), environment_item("dev", 0)});
  ASSERT_TRUE(run_until([&] { return body().find(after) != std::string::npos; }));
  // The list in flight when the answer changed may still carry the old count; the next one
  // carries the new.
  EXPECT_LE(fake_.call_count("EnvironmentList"), lists + 2);
  EXPECT_EQ(body().find(before), std::string::npos);
}

// With a Kubernetes source whose first LIST is still coming in, the job lists are partial: the
// tasks and billing rounds ask nothing until it is in, then ask about every job at once, and tell
// the model when their answers are in (the application holds the first snapshot until then).
TEST_F(ModalPublishTest, TasksAndBillingWaitForTheFirstListThenAskAboutEveryJob) {
  Config config = config_;
  config.kubernetes.enabled = true;
  Model model(config);
  for (int i = 0; i < kJobs; ++i) model.upsert_job(running_job(i));
  source_ = std::make_unique<ModalSource>(io_, config.modal, config.backoff, model, model);
  source_->start();
  ASSERT_TRUE(run_until([&] { return fake_.call_count("AppList") >= 3; }));
  EXPECT_EQ(fake_.call_count("TaskList"), 0);
  EXPECT_EQ(fake_.call_count("WorkspaceBillingReport"), 0);
  EXPECT_FALSE(model.modal_settled());

  model.source_succeeded("kubernetes", 0.1);
  EXPECT_TRUE(run_until([&] { return model.modal_settled(); }));
  EXPECT_GE(fake_.call_count("TaskList"), 1);
  EXPECT_GE(fake_.call_count("WorkspaceBillingReport"), 2);
  for (int i = 0; i < kJobs; ++i) {
    EXPECT_TRUE(model.cold_starts("m" + std::to_string(i)).has_value()) << i;
  }
  EXPECT_TRUE(model.billing_hourly().has_value());
  source_.reset();  // before `model`, which it reports to
}

}  // namespace
}  // namespace mx
