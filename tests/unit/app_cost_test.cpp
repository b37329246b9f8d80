// Billing figures of src/metrics/app_cost.cpp: today's cost from complete intervals plus the
// running estimate, and the per-resource split (modal_app_cost_usd).
#include "metrics/app_cost.h"

#include <gtest/gtest.h>

#include "metrics/derivation.h"
#include "model/model.h"

namespace mx {
namespace {

constexpr double kDay0 = 1700006400;  // a UTC midnight
constexpr double kHour = 3600;

class AppCostTest : public ::testing::Test {
 protected:
  AppCostTest() : model_(Config{}, [this] { return clock_; }), derivation_(set_) {}

  JobObject running_job() {
    JobObject j;
    j.uid = "u1";
    j.kind = "ModalJob";
    j.namespace_name = "ml";
    j.name = "train";
    j.gpu_type = "T4";
    j.gpu_count = 1;
    j.phase = "Running";
    j.created_at = kDay0 + 3 * kHour;
    j.started_at = kDay0 + 3 * kHour;
    j.modal_app_id = "ap-1";
    return j;
  }

  static BillingItem item(double interval, NanoUsd cost,
                          std::map<std::string, NanoUsd> split = {}) {
    return BillingItem{"ap-1", interval, cost, {split.begin(), split.end()}};
  }

  std::string render() {
    derivation_.update(model_);
    return set_.publish(1)->body(ExpositionFormat::text);
  }

  static bool has(const std::string& text, const std::string& line) {
    return text.find(line + "\n") != std::string::npos;
  }

  double clock_ = kDay0 + 5.5 * kHour;
  Model model_;
  FamilySet set_;
  Derivation derivation_;
};

TEST_F(AppCostTest, NothingBeforeTheFirstReport) {
  const auto job = running_job();
  model_.upsert_job(job);
  EXPECT_FALSE(job_cost_today(model_, job, 1.0, job.started_at, true));
  EXPECT_EQ(render().find("time_period=\"daily\""), std::string::npos);
}

TEST_F(AppCostTest, TodayIsCompleteHoursPlusTheRunningEstimate) {
  // Modal excludes the hour in progress: rows for 03:00 and 04:00; a credit in the second.
  const auto job = running_job();
  model_.upsert_job(job);
  model_.modal_billing(BillingReport{"d", kDay0 - 30 * 86400, clock_, {item(kDay0 - 86400, 7e9)}});
  model_.modal_billing(BillingReport{
      "h",
      kDay0 - 19 * kHour,
      clock_,
      {item(kDay0 - kHour, 5e9), item(kDay0 + 3 * kHour, 1e9), item(kDay0 + 4 * kHour, -25e7)}});
  const double hourly = 2.0;
  const auto today = job_cost_today(model_, job, hourly, job.started_at, true);
  ASSERT_TRUE(today);
  // 0.75 billed (yesterday's rows left out) + 2 USD/h over 05:00..05:30.
  EXPECT_DOUBLE_EQ(*today, 0.75 + 1.0);
  // A finished job's estimate stops at finished_at.
  auto done = job;
  done.phase = "Succeeded";
  done.finished_at = kDay0 + 5.25 * kHour;
  EXPECT_DOUBLE_EQ(*job_cost_today(model_, done, hourly, done.started_at, false), 0.75 + 0.5);
}

TEST_F(AppCostTest, ADailyRowForTodayCoversTheWholeDay) {
  // A server that includes the day in progress: its row is the figure, no estimate on top.
  const auto job = running_job();
  model_.upsert_job(job);
  model_.modal_billing(
      BillingReport{"d", kDay0 - 30 * 86400, clock_, {item(kDay0, 3'500'000'000)}});
  model_.modal_billing(BillingReport{"h", kDay0 - 19 * kHour, clock_, {item(kDay0 + kHour, 1e9)}});
  EXPECT_DOUBLE_EQ(*job_cost_today(model_, job, 2.0, job.started_at, true), 3.5);
  EXPECT_TRUE(has(render(),
                  "modal_cost_estimate_usd{namespace=\"ml\",job_name=\"train\",gpu_type=\"T4\","
                  "time_period=\"daily\"} 3.5"));
}

TEST_F(AppCostTest, AnAppWithoutRowsShowsOnlyWhatItRanToday) {
  const auto job = running_job();
  model_.upsert_job(job);
  model_.modal_billing(BillingReport{"h", kDay0 - 19 * kHour, clock_, {}});
  // Ran 03:00..05:30, nothing reported: all estimate.
  EXPECT_DOUBLE_EQ(*job_cost_today(model_, job, 2.0, job.started_at, true), 5.0);
  auto old = job;
  old.phase = "Succeeded";
  old.finished_at = kDay0 - kHour;  // ended yesterday, no rows: no figure
  old.started_at = kDay0 - 2 * kHour;
  EXPECT_FALSE(job_cost_today(model_, old, 2.0, old.started_at, false));
}

// 30k rows at 10k jobs: the app id (25 characters, on the heap) is kept once, as the rows' key.
TEST_F(AppCostTest, StoredRowsKeepTheAppIdOnceInTheirKey) {
  const std::string app = "ap-0123456789abcdefghijklmn";
  auto row = item(kDay0 - 86400, 2e9, {{"T4", 2e9}});
  row.app_id = app;
  model_.modal_billing(BillingReport{"d", kDay0 - 30 * 86400, clock_, {row, row}});
  ASSERT_TRUE(model_.billing_daily());
  const auto& rows = model_.billing_daily()->at(app);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_TRUE(rows[0].app_id.empty());
  EXPECT_EQ(rows[1].app_id.capacity(), std::string().capacity());
  EXPECT_TRUE(has(render(), "modal_app_cost_usd{app_id=\"" + app +
                                "\",resource=\"T4\",time_period=\"total\"} 4"));
}

TEST_F(AppCostTest, CostIsSplitByResource) {
  model_.upsert_job(running_job());
  model_.modal_billing(BillingReport{"d",
                                     kDay0 - 30 * 86400,
                                     clock_,
                                     {item(kDay0 - 86400, 3e9, {{"T4", 2e9}, {"CPU", 1e9}}),
                                      item(kDay0 - 2 * 86400, 1e9, {{"T4", 1e9}})}});
  model_.modal_billing(BillingReport{"h",
                                     kDay0 - 19 * kHour,
                                     clock_,
                                     {item(kDay0 + 3 * kHour, 5e8, {{"T4", 4e8}, {"Memory", 1e8}}),
                                      item(kDay0 + 4 * kHour, -1e8, {{"T4", -1e8}})}});
  const auto text = render();
  EXPECT_TRUE(
      has(text, "modal_app_cost_usd{app_id=\"ap-1\",resource=\"T4\",time_period=\"daily\"} 0.3"))
      << text;
  EXPECT_TRUE(
      has(text, "modal_app_cost_usd{app_id=\"ap-1\",resource=\"T4\",time_period=\"total\"} 3.3"));
  EXPECT_TRUE(
      has(text, "modal_app_cost_usd{app_id=\"ap-1\",resource=\"CPU\",time_period=\"daily\"} 0"));
  EXPECT_TRUE(
      has(text, "modal_app_cost_usd{app_id=\"ap-1\",resource=\"CPU\",time_period=\"total\"} 1"));
  EXPECT_TRUE(has(
      text, "modal_app_cost_usd{app_id=\"ap-1\",resource=\"Memory\",time_period=\"daily\"} 0.1"));
  EXPECT_NE(text.find("# TYPE modal_app_cost_usd gauge"), std::string::npos);
  // A later report without the app removes its series.
  model_.modal_billing(BillingReport{"d", kDay0 - 30 * 86400, clock_, {}});
  model_.modal_billing(BillingReport{"h", kDay0 - 19 * kHour, clock_, {}});
  EXPECT_EQ(render().find("modal_app_cost_usd{"), std::string::npos);
}

}  // namespace
}  // namespace mx
