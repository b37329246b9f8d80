// The pure proto -> struct conversions of src/sources/modal/convert.cpp: no server needed.
#include "sources/modal/convert.h"

#include <limits>
#include <map>
#include <optional>

#include <gtest/gtest.h>

#include "fake_modal_server.h"
#include "rpc_status.pb.h"
#include "sources/modal/decimal.h"

namespace mx {
namespace {

namespace pb = ::modal::client;
using modal_convert::Issues;

pb::WorkspaceBillingReportItem item(const std::string& app, std::int64_t interval,
                                    const std::string& cost) {
  pb::WorkspaceBillingReportItem out;
  out.set_object_id(app);
  out.mutable_interval()->set_seconds(interval);
  out.set_cost(cost);
  return out;
}

TEST(ConvertApps, CopiesFieldsAndDropsItemsWithoutId) {
  pb::AppListResponse response;
  auto* a = response.add_apps();
  a->set_app_id("ap-1");
  a->set_name("job-a");
  a->set_description("desc");
  a->set_state(pb::APP_STATE_DEPLOYED);
  a->set_created_at(1700000000.5);
  a->set_stopped_at(-3);  // nonsense: absent
  a->set_n_running_tasks(-2);
  response.add_apps()->set_name("no id");
  Issues issues;
  const auto apps = modal_convert::apps(response, issues);
  ASSERT_EQ(apps.size(), 1u);
  EXPECT_EQ(apps[0].app_id, "ap-1");
  EXPECT_EQ(apps[0].name, "job-a");
  EXPECT_EQ(apps[0].state, pb::APP_STATE_DEPLOYED);
  EXPECT_EQ(apps[0].running_tasks, 0);
  EXPECT_EQ(*apps[0].created_at, 1700000000.5);
  EXPECT_FALSE(apps[0].stopped_at);
  EXPECT_EQ(issues.malformed, 1);
}

TEST(ConvertTasks, SplitsAnEnvironmentWideListByApp) {
  pb::TaskListResponse response;
  for (const auto& [task, app] :
       std::vector<std::pair<std::string, std::string>>{{"ta-1", "ap-1"},
                                                        {"ta-2", "ap-2"},
                                                        {"ta-3", "ap-1"},
                                                        {"ta-4", "ap-other"},
                                                        {"ta-5", ""},
                                                        {"", "ap-1"}}) {
    auto* t = response.add_tasks();
    t->set_task_id(task);
    t->set_app_id(app);
    t->set_enqueued_at(10);
    t->set_started_at(12);
  }
  Issues issues;
  auto by_app = modal_convert::tasks_by_app(response, "", {"ap-1", "ap-2", "ap-idle"}, issues);
  ASSERT_EQ(by_app.size(), 3u);
  ASSERT_EQ(by_app["ap-1"].size(), 2u);
  EXPECT_EQ(by_app["ap-1"][0].task_id, "ta-1");
  EXPECT_EQ(by_app["ap-1"][1].task_id, "ta-3");
  EXPECT_EQ(*by_app["ap-1"][0].enqueued_at, 10);
  EXPECT_EQ(*by_app["ap-1"][0].started_at, 12);
  EXPECT_EQ(by_app["ap-2"].size(), 1u);
  EXPECT_TRUE(by_app["ap-idle"].empty());  // asked, none running: an empty list, not absent
  EXPECT_EQ(issues.malformed, 2);          // no app id in an environment-wide list; no task id
}

TEST(ConvertTasks, PerAppListFillsInTheAppAndIgnoresOthers) {
  pb::TaskListResponse response;
  response.add_tasks()->set_task_id("ta-1");
  auto* other = response.add_tasks();
  other->set_task_id("ta-9");
  other->set_app_id("ap-9");  // a server that ignores the app filter
  Issues issues;
  auto by_app = modal_convert::tasks_by_app(response, "ap-1", {"ap-1"}, issues);
  ASSERT_EQ(by_app["ap-1"].size(), 1u);
  EXPECT_EQ(by_app["ap-1"][0].app_id, "ap-1");
  EXPECT_FALSE(by_app.contains("ap-9"));
  EXPECT_EQ(issues.total(), 0);
}

TEST(ConvertTaskInfo, GpuFromConfigElseLegacyField) {
  pb::TaskGetInfoResponse r;
  r.set_app_id("ap-1");
  r.mutable_info()->set_finished_at(200);
  r.mutable_info()->set_gpu_type("T4");
  auto info = modal_convert::task_info(r, "ta-asked");
  EXPECT_EQ(info.task_id, "ta-asked");
  EXPECT_EQ(info.gpu_type, "T4");
  EXPECT_EQ(info.gpu_count, 1u);
  EXPECT_EQ(*info.finished_at, 200);
  r.mutable_info()->set_id("ta-1");
  r.mutable_info()->mutable_gpu_config()->set_gpu_type("H100");
  r.mutable_info()->mutable_gpu_config()->set_count(8);
  r.mutable_info()->mutable_result()->set_status(pb::GenericResult::GENERIC_STATUS_FAILURE);
  info = modal_convert::task_info(r, "ta-asked");
  EXPECT_EQ(info.task_id, "ta-1");
  EXPECT_EQ(info.gpu_type, "H100");
  EXPECT_EQ(info.gpu_count, 8u);
  EXPECT_EQ(info.result_status, pb::GenericResult::GENERIC_STATUS_FAILURE);
}

TEST(ConvertFunctionStats, CopiesCounts) {
  pb::FunctionStats s;
  s.set_backlog(7);
  s.set_num_total_tasks(3);
  s.set_num_running_inputs(5);
  const auto stats = modal_convert::function_stats(s, "fu-1");
  EXPECT_EQ(stats.function_id, "fu-1");
  EXPECT_EQ(stats.backlog, 7u);
  EXPECT_EQ(stats.num_total_tasks, 3u);
  EXPECT_EQ(stats.num_running_inputs, 5u);
}

TEST(ConvertRates, DropsDeprecatedKeysAndNonFiniteValues) {
  pb::WorkspaceBillingRatesResponse r;
  (*r.mutable_rates())["A100-80GB"] = "2.4984";
  (*r.mutable_rates())["CPU"] = "1.31E-5";
  (*r.mutable_rates())["old-gpu"] = "9";
  (*r.mutable_rates())["gone-gpu"] = "9";
  (*r.mutable_rates())["H100"] = "NaN";
  (*r.mutable_rates())["T4"] = "abc";
  (*r.mutable_deprecation_warnings())["old-gpu"] = "use new-gpu";
  (*r.mutable_deprecation_errors())["gone-gpu"] = "removed";
  Issues issues;
  const auto out = modal_convert::rates(r, issues);
  EXPECT_EQ(out.rates.per_hour.size(), 2u);
  EXPECT_EQ(out.rates.per_hour.at("a100-80gb"), *parse_usd("2.4984"));
  EXPECT_EQ(out.rates.per_hour.at("cpu"), 13100);
  EXPECT_EQ(out.deprecated, (std::vector<std::string>{"gone-gpu", "old-gpu"}));
  EXPECT_EQ(issues.not_finite, 1);
  EXPECT_EQ(issues.malformed, 1);
}

TEST(ConvertBilling, KeepsCreditsExponentsAndTheResourceSplit) {
  auto a = item("ap-1", 3600, "1.5");
  (*a.mutable_cost_by_resource())["A100-80GB"] = "1.2";
  (*a.mutable_cost_by_resource())["CPU"] = "3E-1";
  (*a.mutable_cost_by_resource())["Memory"] = "Infinity";  // dropped, the item kept
  auto credit = item("ap-1", 7200, "-0.25");
  auto tiny = item("ap-2", 3600, "2.5E-8");
  auto nan = item("ap-2", 3600, "NaN");
  auto no_app = item("", 3600, "1");
  auto no_interval = item("ap-1", 0, "1");
  no_interval.clear_interval();
  Issues issues;
  BillingReport report;
  for (const auto* i : {&a, &credit, &tiny, &nan, &no_app, &no_interval}) {
    modal_convert::add_billing_item(*i, report, issues);
  }
  ASSERT_EQ(report.items.size(), 3u);
  EXPECT_EQ(report.items[0].cost_by_resource.size(), 2u);
  EXPECT_EQ(report.items[0].cost_by_resource.at("A100-80GB"), 1200000000);
  EXPECT_EQ(report.items[0].cost_by_resource.at("CPU"), 300000000);
  EXPECT_EQ(report.items[0].cost + report.items[1].cost, 1250000000);  // the credit lowers it
  EXPECT_EQ(report.items[2].cost, 25);
  EXPECT_EQ(issues.not_finite, 2);
  EXPECT_EQ(issues.malformed, 2);
}

TEST(ConvertRetryAfter, ReadsRpcRetryPolicyFromStatusDetails) {
  EXPECT_FALSE(modal_convert::retry_after_seconds(grpc::Status::OK));
  EXPECT_FALSE(modal_convert::retry_after_seconds(
      grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "slow down")));
  EXPECT_FALSE(modal_convert::retry_after_seconds(
      grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "x", "\xff\xff not a proto")));
  pb::RPCRetryPolicy policy;
  policy.set_retry_after_secs(2.5);
  ::mx::rpc::StatusDetails details;
  details.set_code(8);
  *details.add_details() = mx::testing::pack_any(pb::AppListRequest());  // another detail first
  *details.add_details() = mx::testing::pack_any(policy);
  const auto secs = modal_convert::retry_after_seconds(
      grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "x", details.SerializeAsString()));
  ASSERT_TRUE(secs);
  EXPECT_DOUBLE_EQ(*secs, 2.5);
}

// The lite runtime has no Any::Is: the type URL's last path segment must be the whole name.
TEST(ConvertRetryAfter, ADetailOfAnotherTypeIsNotARetryPolicy) {
  pb::RPCRetryPolicy policy;
  policy.set_retry_after_secs(2.5);
  ::mx::rpc::StatusDetails details;
  auto* other = details.add_details();
  *other = mx::testing::pack_any(policy);
  other->set_type_url("type.googleapis.com/other.modal.client.RPCRetryPolicy");
  EXPECT_FALSE(modal_convert::retry_after_seconds(
      grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "x", details.SerializeAsString())));
  other->set_type_url("modal.client.RPCRetryPolicy");  // no "/": not a type URL
  EXPECT_FALSE(modal_convert::retry_after_seconds(
      grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "x", details.SerializeAsString())));
  other->set_type_url("/modal.client.RPCRetryPolicy");
  EXPECT_TRUE(modal_convert::retry_after_seconds(
      grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "x", details.SerializeAsString())));
}

TEST(ConvertEnvironments, EveryFieldAndPresenceOfTheOptionalOnes) {
  pb::EnvironmentListResponse response;
  auto* full = response.add_items();
  full->set_name("main");
  full->set_environment_id("en-1");
  full->set_default_(true);
  full->set_is_managed(false);
  full->set_max_concurrent_tasks(100);
  full->set_max_concurrent_gpus(0);  // present and 0: a limit of none at all
  full->set_current_concurrent_tasks(12);
  full->set_current_concurrent_gpus(7);
  full->set_cycle_budget_dollars(0);  // present and 0
  full->set_effective_cycle_spend_limit(500.5);
  full->set_current_cycle_usage(123.25);
  full->set_spend_limit_reached(true);
  auto* bare = response.add_items();  // no optional field set
  bare->set_name("dev");
  bare->set_environment_id("en-2");
  bare->set_is_managed(true);
  bare->set_current_concurrent_tasks(-1);
  bare->set_effective_cycle_spend_limit(std::numeric_limits<double>::quiet_NaN());
  response.add_items()->set_environment_id("en-3");  // no name
  Issues issues;
  const auto envs = modal_convert::environments(response, issues);
  ASSERT_EQ(envs.size(), 2u);
  const auto& e = envs[0];
  EXPECT_EQ(e.name, "main");
  EXPECT_EQ(e.environment_id, "en-1");
  EXPECT_TRUE(e.is_default);
  EXPECT_FALSE(e.managed);
  EXPECT_EQ(e.max_concurrent_tasks, std::optional<std::int64_t>(100));
  EXPECT_EQ(e.max_concurrent_gpus, std::optional<std::int64_t>(0));
  EXPECT_EQ(e.concurrent_tasks, 12);
  EXPECT_EQ(e.concurrent_gpus, 7);
  EXPECT_EQ(e.cycle_budget_usd, std::optional<double>(0));
  EXPECT_EQ(e.cycle_spend_limit_usd, std::optional<double>(500.5));
  EXPECT_EQ(e.cycle_spend_usd, std::optional<double>(123.25));
  EXPECT_TRUE(e.spend_limit_reached);
  const auto& b = envs[1];
  EXPECT_FALSE(b.is_default);
  EXPECT_TRUE(b.managed);
  EXPECT_FALSE(b.max_concurrent_tasks);
  EXPECT_FALSE(b.max_concurrent_gpus);
  EXPECT_FALSE(b.cycle_budget_usd);
  EXPECT_EQ(b.concurrent_tasks, 0);
  EXPECT_FALSE(b.cycle_spend_limit_usd);  // NaN: nothing to show
  EXPECT_EQ(b.cycle_spend_usd, std::optional<double>(0));
  EXPECT_FALSE(b.spend_limit_reached);
  EXPECT_EQ(issues.malformed, 1);
  EXPECT_EQ(issues.not_finite, 1);
}

TEST(ConvertEnvironmentCost, ExactDecimalsByCategory) {
  pb::EnvironmentBillingSummaryResponse response;
  response.set_metered_cost("12.000000001");
  auto& breakdown = *response.mutable_metered_cost_breakdown();
  breakdown["deployed"] = "10";
  breakdown["ephemeral"] = "2.000000001";
  breakdown["volume"] = "1E-9";
  breakdown["notebook"] = "NaN";
  breakdown[""] = "1";
  Issues issues;
  const auto cost = modal_convert::environment_cost(response, issues);
  EXPECT_EQ(cost.total, std::optional<NanoUsd>(12000000001));
  EXPECT_EQ(cost.by_category,
            (std::map<std::string, NanoUsd>{
                {"deployed", 10000000000}, {"ephemeral", 2000000001}, {"volume", 1}}));
  EXPECT_EQ(issues.not_finite, 1);
  EXPECT_EQ(issues.malformed, 1);

  Issues none;
  const auto empty = modal_convert::environment_cost(pb::EnvironmentBillingSummaryResponse{}, none);
  EXPECT_FALSE(empty.total);
  EXPECT_TRUE(empty.by_category.empty());
  EXPECT_EQ(none.total(), 0);
}

TEST(ConvertMonthStart, FirstInstantOfTheUtcMonth) {
  EXPECT_EQ(modal_convert::month_start(1764979200), 1764547200);  // 2025-12-06 -> 2025-12-01
  EXPECT_EQ(modal_convert::month_start(1764547200), 1764547200);  // the instant itself
  EXPECT_EQ(modal_convert::month_start(1764547199), 1761955200);  // a second before: November
  EXPECT_EQ(modal_convert::month_start(1709251199), 1706745600);  // 2024-02-29 23:59:59
}

}  // namespace
}  // namespace mx
