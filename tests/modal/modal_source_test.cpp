// ModalSource against the in-process fake Modal server: auth metadata, the JWT life cycle, each
// injected fault counted under its error_type with backoff and recovery, billing streams,
// deadlines, missing credentials, stop().
#include "sources/modal/modal_source.h"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <ostream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "common/log.h"
#include "fake_modal_server.h"
#include "sources/modal/decimal.h"

namespace mx {
namespace {

using namespace std::chrono_literals;
using testing::FakeModalServer;
namespace pb = ::modal::client;

// Records what the source tells the model; the lists it is asked about are set by the test.
class RecordingSink : public ModalSink {
 public:
  void count_error(std::string_view component, std::string_view type) override {
    check_thread();
    ++errors[std::string(component) + "/" + std::string(type)];
  }
  void source_succeeded(std::string_view source, double seconds) override {
    check_thread();
    EXPECT_EQ(source, "modal");
    EXPECT_GE(seconds, 0.0);
    ++successes;
  }
  void source_failed(std::string_view source) override {
    check_thread();
    EXPECT_EQ(source, "modal");
    ++failures;
  }
  void modal_apps(std::vector<ModalApp> a) override {
    check_thread();
    apps.push_back(std::move(a));
  }
  void modal_tasks(const std::string& app_id, std::vector<ModalTask> t) override {
    check_thread();
    tasks[app_id] = std::move(t);
    ++task_lists;
  }
  void modal_task_info(ModalTaskInfo info) override {
    check_thread();
    known_tasks.insert(info.task_id);
    task_infos.push_back(std::move(info));
  }
  void modal_function_stats(ModalFunctionStats s) override {
    check_thread();
    stats.push_back(std::move(s));
  }
  void modal_billing(BillingReport report) override {
    check_thread();
    billing.push_back(std::move(report));
  }
  void modal_rates(BillingRates r) override {
    check_thread();
    rates.push_back(std::move(r));
  }
  std::vector<std::string> active_job_app_ids() const override { return active_apps; }
  std::vector<std::string> known_job_app_ids() const override { return known_apps; }
  std::vector<std::string> job_function_ids() const override { return functions; }
  bool task_info_known(const std::string& id) const override { return known_tasks.contains(id); }

  int error(const std::string& type) const {
    auto it = errors.find("modal_api/" + type);
    return it == errors.end() ? 0 : it->second;
  }
  int billing_reports(const std::string& resolution) const {
    int n = 0;
    for (const auto& r : billing) n += r.resolution == resolution ? 1 : 0;
    return n;
  }
  int total_calls() const {
    int n = successes + failures +
            static_cast<int>(apps.size() + task_infos.size() + stats.size() + billing.size() +
                             rates.size()) +
            task_lists;
    for (const auto& [k, v] : errors) n += v;
    return n;
  }

  std::map<std::string, int> errors;
  int successes = 0;
  int failures = 0;
  int task_lists = 0;
  std::vector<std::vector<ModalApp>> apps;
  std::map<std::string, std::vector<ModalTask>> tasks;
  std::vector<ModalTaskInfo> task_infos;
  std::set<std::string> known_tasks;
  std::vector<ModalFunctionStats> stats;
  std::vector<BillingReport> billing;
  std::vector<BillingRates> rates;
  std::vector<std::string> active_apps;
  std::vector<std::string> known_apps;
  std::vector<std::string> functions;
  std::thread::id owner = std::this_thread::get_id();
  bool wrong_thread = false;

 private:
  void check_thread() {
    if (std::this_thread::get_id() != owner) wrong_thread = true;
  }
};

pb::AppListResponse::AppListItem make_app(const std::string& id, const std::string& name,
                                          int running) {
  pb::AppListResponse::AppListItem app;
  app.set_app_id(id);
  app.set_name(name);
  app.set_description(name + " app");
  app.set_state(pb::APP_STATE_DEPLOYED);
  app.set_created_at(1700000000.5);
  app.set_n_running_tasks(running);
  return app;
}

pb::WorkspaceBillingReportItem make_item(const std::string& app_id, std::int64_t interval,
                                         const std::string& cost) {
  pb::WorkspaceBillingReportItem item;
  item.set_object_id(app_id);
  item.mutable_interval()->set_seconds(interval);
  item.set_cost(cost);
  (*item.mutable_cost_by_resource())["gpu"] = cost;
  return item;
}

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class ModalSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    unsetenv("MODAL_TOKEN_ID");
    unsetenv("MODAL_TOKEN_SECRET");
    dir_ = std::filesystem::temp_directory_path() /
           ("modal-source-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    config_.server_url = fake_.address();
    config_.environment = "main";
    config_.token_id_file = write("token-id", std::string(FakeModalServer::kDefaultTokenId) + "\n");
    config_.token_secret_file =
        write("token-secret", std::string(FakeModalServer::kDefaultTokenSecret) + "\n");
    config_.call_timeout = 5s;
    config_.apps_interval = 50ms;
    config_.tasks_interval = 50ms;
    config_.stats_interval = 50ms;
    config_.billing_interval = 50ms;
    config_.rates_interval = 50ms;
    backoff_.initial = 20ms;
    backoff_.max = 100ms;
    fake_.set_apps({make_app("ap-1", "job-a", 2)});

    log::configure(LogLevel::debug, LogFormat::logfmt);
    log::set_sink([this](std::string_view line) {
      std::lock_guard lock(log_mutex_);
      logs_.emplace_back(line);
    });
  }

  void TearDown() override {
    source_.reset();
    log::set_sink({});
    log::configure(LogLevel::info, LogFormat::logfmt);
    unsetenv("MODAL_TOKEN_ID");
    unsetenv("MODAL_TOKEN_SECRET");
    std::filesystem::remove_all(dir_);
    EXPECT_FALSE(sink_.wrong_thread) << "the sink was called off the io_context thread";
  }

  std::string write(const std::string& name, const std::string& content) {
    auto path = (dir_ / name).string();
    std::ofstream(path) << content;
    return path;
  }

  void start() {
    source_ = std::make_unique<ModalSource>(io_, config_, backoff_, sink_);
    source_->start();
  }

  // Drives the io_context on this thread until `pred` holds (false after a generous deadline).
  template <typename Pred>
  bool run_until(Pred pred, std::chrono::seconds timeout = 20s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!pred()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      io_.run_for(5ms);
    }
    return true;
  }

  std::vector<std::string> logs() {
    std::lock_guard lock(log_mutex_);
    return logs_;
  }
  int log_lines_containing(const std::string& needle) {
    int n = 0;
    for (const auto& line : logs()) n += line.find(needle) != std::string::npos ? 1 : 0;
    return n;
  }

  FakeModalServer fake_;
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_{
      io_.get_executor()};
  RecordingSink sink_;
  ModalConfig config_;
  BackoffConfig backoff_;
  std::filesystem::path dir_;
  std::mutex log_mutex_;
  std::vector<std::string> logs_;
  std::unique_ptr<ModalSource> source_;  // last: destroyed first
};

TEST_F(ModalSourceTest, PublishesAppsWithAuthMetadata) {
  start();
  ASSERT_TRUE(run_until([&] { return sink_.successes >= 2; }));

  ASSERT_FALSE(sink_.apps.empty());
  const auto& apps = sink_.apps.back();
  ASSERT_EQ(apps.size(), 1u);
  EXPECT_EQ(apps[0].app_id, "ap-1");
  EXPECT_EQ(apps[0].name, "job-a");
  EXPECT_EQ(apps[0].state, pb::APP_STATE_DEPLOYED);
  EXPECT_EQ(apps[0].running_tasks, 2);
  ASSERT_TRUE(apps[0].created_at);
  EXPECT_DOUBLE_EQ(*apps[0].created_at, 1700000000.5);
  EXPECT_FALSE(apps[0].stopped_at);

  const auto app_calls = fake_.calls_of("AppList");
  ASSERT_FALSE(app_calls.empty());
  for (const auto& call : app_calls) {
    EXPECT_EQ(call.metadata.at("x-modal-token-id"), FakeModalServer::kDefaultTokenId);
    EXPECT_EQ(call.metadata.at("x-modal-token-secret"), FakeModalServer::kDefaultTokenSecret);
    EXPECT_EQ(call.metadata.at("x-modal-client-type"), "9");
    EXPECT_EQ(call.metadata.at("x-modal-client-version"), "1.0.0");
    EXPECT_EQ(call.metadata.at("x-modal-auth-token"), fake_.current_token());
    EXPECT_NE(call.request.find("environment_name: \"main\""), std::string::npos) << call.request;
  }
  const auto token_calls = fake_.calls_of("AuthTokenGet");
  ASSERT_EQ(token_calls.size(), 1u);
  EXPECT_EQ(token_calls[0].metadata.at("x-modal-token-secret"),
            FakeModalServer::kDefaultTokenSecret);
  EXPECT_FALSE(token_calls[0].metadata.contains("x-modal-auth-token"));
  EXPECT_EQ(sink_.failures, 0);
}

TEST_F(ModalSourceTest, ClientTypeAndVersionAreConfigurable) {
  config_.client_type = 1;
  config_.client_version = "0.73.0";
  start();
  ASSERT_TRUE(run_until([&] { return sink_.successes >= 1; }));
  const auto call = fake_.calls_of("AppList").front();
  EXPECT_EQ(call.metadata.at("x-modal-client-type"), "1");
  EXPECT_EQ(call.metadata.at("x-modal-client-version"), "0.73.0");
}

TEST_F(ModalSourceTest, SecretsNeverReachTheLogs) {
  // Failures of every kind, so that every log line the source can write about them is written.
  fake_.fail_next("AppList", 1, grpc::StatusCode::UNAVAILABLE);
  fake_.fail_next("WorkspaceBillingRates", 2, grpc::StatusCode::UNAUTHENTICATED);
  start();
  ASSERT_TRUE(run_until([&] {
    return sink_.successes >= 3 && sink_.error("grpc_unauthenticated") >= 1 &&
           sink_.error("grpc_unavailable") >= 1;
  }));
  fake_.rotate_token();  // a refused JWT takes the debug-logged refresh path
  const int before = sink_.successes;
  ASSERT_TRUE(run_until([&] { return sink_.successes >= before + 2; }));

  const auto lines = logs();
  ASSERT_FALSE(lines.empty());
  EXPECT_GE(log_lines_containing("modal poll failed"), 2);
  const std::string jwt = fake_.current_token();
  for (const auto& line : lines) {
    EXPECT_EQ(line.find(FakeModalServer::kDefaultTokenSecret), std::string::npos) << line;
    EXPECT_EQ(line.find(jwt), std::string::npos) << line;
    EXPECT_EQ(line.find("fake-signature"), std::string::npos) << line;  // any of our JWTs
  }
}

TEST_F(ModalSourceTest, CachesTheJwtUntilShortlyBeforeItsExpiry) {
  fake_.set_token_lifetime(1h);
  start();
  ASSERT_TRUE(run_until([&] { return sink_.successes >= 5; }));
  EXPECT_EQ(fake_.call_count("AuthTokenGet"), 1);
}

TEST_F(ModalSourceTest, ATokenCloseToExpiryIsNotCached) {
  // exp 30 s ahead is inside the 60 s refresh margin: each use fetches again.
  fake_.set_token_lifetime(30s);
  config_.rates_interval = 1h;  // only the apps poller calls
  start();
  ASSERT_TRUE(run_until([&] { return sink_.successes >= 4; }));
  EXPECT_GE(fake_.call_count("AuthTokenGet"), 4);
  EXPECT_EQ(sink_.error("grpc_unauthenticated"), 0);
}

TEST_F(ModalSourceTest, RefetchesTheJwtOnceWhenTheServerRefusesIt) {
  start();
  ASSERT_TRUE(run_until([&] { return sink_.successes >= 1; }));
  const std::string old_token = fake_.current_token();
  fake_.rotate_token();
  const std::string new_token = fake_.current_token();
  ASSERT_NE(old_token, new_token);
  const int before = sink_.successes;
  ASSERT_TRUE(run_until([&] { return sink_.successes >= before + 3; }));

  EXPECT_EQ(fake_.call_count("AuthTokenGet"), 2);
  EXPECT_EQ(fake_.calls_of("AppList").back().metadata.at("x-modal-auth-token"), new_token);
  EXPECT_EQ(sink_.error("grpc_unauthenticated"), 0);  // a refreshed token is not an error
  EXPECT_EQ(sink_.failures, 0);
}

TEST_F(ModalSourceTest, WorksWithoutAuthTokenGet) {
  fake_.set_auth_token_enabled(false);
  start();
  ASSERT_TRUE(run_until([&] { return sink_.successes >= 3 && !sink_.rates.empty(); }));
  EXPECT_EQ(fake_.call_count("AuthTokenGet"), 1);
  for (const auto& call : fake_.calls_of("AppList")) {
    EXPECT_FALSE(call.metadata.contains("x-modal-auth-token"));
    EXPECT_EQ(call.metadata.at("x-modal-token-id"), FakeModalServer::kDefaultTokenId);
  }
  EXPECT_EQ(log_lines_containing("does not implement AuthTokenGet"), 1);
  EXPECT_EQ(sink_.failures, 0);
}

TEST_F(ModalSourceTest, WrongCredentialsBackOffToTheMaximum) {
  fake_.set_credentials("ak-other", "as-other");
  start();
  ASSERT_TRUE(run_until([&] { return sink_.error("grpc_unauthenticated") >= 3; }));
  EXPECT_GE(sink_.failures, 3);
  EXPECT_EQ(sink_.successes, 0);
  EXPECT_GE(log_lines_containing("retry_in=100ms"), 3);
  // Nothing but AuthTokenGet was tried: without a token nothing else can succeed.
  for (const auto& call : fake_.calls()) EXPECT_EQ(call.method, "AuthTokenGet");

  fake_.set_credentials(FakeModalServer::kDefaultTokenId, FakeModalServer::kDefaultTokenSecret);
  ASSERT_TRUE(run_until([&] { return sink_.successes >= 1; }));
}

struct FaultCase {
  grpc::StatusCode code;
  std::string error_type;
  int counted;         // of two injected failures (a refused call is retried once with a new JWT)
  bool waits_maximum;  // auth errors are not retried quickly
};

void PrintTo(const FaultCase& c, std::ostream* os) {
  *os << c.error_type;
}

class ModalFaultTest : public ModalSourceTest, public ::testing::WithParamInterface<FaultCase> {};

TEST_P(ModalFaultTest, IsCountedBackedOffAndRecovered) {
  const auto& c = GetParam();
  config_.rates_interval = 1h;
  fake_.fail_next("AppList", 2, c.code);
  start();
  ASSERT_TRUE(
      run_until([&] { return sink_.error(c.error_type) >= c.counted && sink_.successes >= 1; }));
  // Recovered; and nothing is counted twice.
  ASSERT_TRUE(run_until([&] { return sink_.successes >= 3; }));
  EXPECT_EQ(sink_.error(c.error_type), c.counted);
  EXPECT_EQ(sink_.failures, c.counted);
  EXPECT_EQ(log_lines_containing("error_type=" + c.error_type), c.counted);
  if (c.waits_maximum) {
    EXPECT_EQ(log_lines_containing("retry_in=100ms"), c.counted);
  } else {
    // One log line per backoff step: attempt 1, then attempt 2.
    EXPECT_EQ(log_lines_containing("attempt=1"), 1);
    EXPECT_EQ(log_lines_containing("attempt=2"), 1);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Codes, ModalFaultTest,
    ::testing::Values(
        FaultCase{grpc::StatusCode::UNAVAILABLE, "grpc_unavailable", 2, false},
        FaultCase{grpc::StatusCode::DEADLINE_EXCEEDED, "grpc_deadline_exceeded", 2, false},
        FaultCase{grpc::StatusCode::RESOURCE_EXHAUSTED, "grpc_resource_exhausted", 2, false},
        FaultCase{grpc::StatusCode::UNAUTHENTICATED, "grpc_unauthenticated", 1, true},
        FaultCase{grpc::StatusCode::PERMISSION_DENIED, "grpc_permission_denied", 2, true}),
    [](const auto& info) { return info.param.error_type; });

TEST_F(ModalSourceTest, SlowServerHitsTheDeadline) {
  config_.call_timeout = 200ms;
  config_.rates_interval = 1h;
  fake_.set_delay("AppList", 10s);
  start();
  ASSERT_TRUE(run_until([&] { return sink_.error("grpc_deadline_exceeded") >= 1; }));
  EXPECT_GE(sink_.failures, 1);
  EXPECT_EQ(sink_.successes, 0);
  fake_.set_delay("AppList", 0ms);
  ASSERT_TRUE(run_until([&] { return sink_.successes >= 1; }));
}

TEST_F(ModalSourceTest, MissingCredentialsAreReportedAndRetried) {
  config_.token_id_file.clear();
  config_.token_secret_file.clear();
  start();
  ASSERT_TRUE(run_until([&] { return sink_.error("auth") >= 3 && sink_.failures >= 3; }));
  EXPECT_TRUE(fake_.calls().empty());  // no call without credentials
  EXPECT_EQ(sink_.successes, 0);
  EXPECT_GE(log_lines_containing("MODAL_TOKEN_ID"), 1);

  // The exporter kept running: credentials that appear later are picked up.
  setenv("MODAL_TOKEN_ID", FakeModalServer::kDefaultTokenId, 1);
  setenv("MODAL_TOKEN_SECRET", FakeModalServer::kDefaultTokenSecret, 1);
  ASSERT_TRUE(run_until([&] { return sink_.successes >= 1; }));
}

TEST_F(ModalSourceTest, RotatedCredentialFilesArePickedUp) {
  start();
  ASSERT_TRUE(run_until([&] { return sink_.successes >= 1; }));
  fake_.set_credentials("ak-rotated", "as-rotated");
  write("token-id", "ak-rotated\n");
  write("token-secret", "as-rotated\n");
  fake_.clear_calls();
  const int before = sink_.successes;
  ASSERT_TRUE(run_until([&] { return sink_.successes >= before + 2; }));
  EXPECT_EQ(fake_.calls_of("AppList").back().metadata.at("x-modal-token-id"), "ak-rotated");
}

TEST_F(ModalSourceTest, TasksTaskInfoStatsAndRates) {
  sink_.active_apps = {"ap-1", "ap-1"};
  sink_.functions = {"fu-1", "fu-gone"};
  pb::TaskStats t1;
  t1.set_task_id("ta-1");
  t1.set_app_id("ap-1");
  t1.set_enqueued_at(90);
  t1.set_started_at(100);
  pb::TaskStats t2;
  t2.set_task_id("ta-2");  // no app id: the requested one is filled in
  fake_.set_tasks("ap-1", {t1, t2});
  pb::TaskGetInfoResponse i1;
  i1.set_app_id("ap-1");
  i1.mutable_info()->set_id("ta-1");
  i1.mutable_info()->set_enqueued_at(90);
  i1.mutable_info()->set_started_at(100);
  i1.mutable_info()->set_finished_at(200);
  i1.mutable_info()->mutable_gpu_config()->set_count(2);
  i1.mutable_info()->mutable_gpu_config()->set_gpu_type("A100-80GB");
  i1.mutable_info()->mutable_result()->set_status(pb::GenericResult::GENERIC_STATUS_SUCCESS);
  fake_.set_task_info("ta-1", i1);
  pb::TaskGetInfoResponse i2;
  i2.set_app_id("ap-1");
  i2.mutable_info()->set_gpu_type("T4");
  fake_.set_task_info("ta-2", i2);
  pb::FunctionStats s;
  s.set_backlog(7);
  s.set_num_total_tasks(3);
  s.set_num_running_inputs(5);
  fake_.set_function_stats("fu-1", s);
  fake_.set_rates({{"A100-80GB", "2.4984"}, {"H100", "bad"}, {"CPU", "0.04716"}});
  start();

  ASSERT_TRUE(run_until([&] {
    return sink_.task_infos.size() >= 2 && !sink_.stats.empty() && !sink_.rates.empty() &&
           sink_.task_lists >= 3 && sink_.error("grpc_not_found") >= 2;
  }));
  // Task lists: one call per distinct app.
  ASSERT_EQ(sink_.tasks["ap-1"].size(), 2u);
  EXPECT_EQ(sink_.tasks["ap-1"][0].task_id, "ta-1");
  EXPECT_EQ(*sink_.tasks["ap-1"][0].enqueued_at, 90);
  EXPECT_EQ(*sink_.tasks["ap-1"][0].started_at, 100);
  EXPECT_EQ(sink_.tasks["ap-1"][1].app_id, "ap-1");
  EXPECT_FALSE(sink_.tasks["ap-1"][1].started_at);
  // Task info: once per task, not on every poll.
  EXPECT_EQ(fake_.call_count("TaskGetInfo"), 2);
  ASSERT_EQ(sink_.task_infos.size(), 2u);
  for (const auto& info : sink_.task_infos) {
    if (info.task_id == "ta-1") {
      EXPECT_EQ(info.app_id, "ap-1");
      EXPECT_EQ(info.gpu_type, "A100-80GB");
      EXPECT_EQ(info.gpu_count, 2u);
      EXPECT_EQ(*info.finished_at, 200);
      EXPECT_EQ(info.result_status, pb::GenericResult::GENERIC_STATUS_SUCCESS);
    } else {
      EXPECT_EQ(info.task_id, "ta-2");
      EXPECT_EQ(info.gpu_type, "T4");
      EXPECT_EQ(info.gpu_count, 1u);
      EXPECT_FALSE(info.finished_at);
      EXPECT_EQ(info.result_status, 0);
    }
  }
  // Stats: the vanished function is counted as not_found but does not fail the source.
  EXPECT_EQ(sink_.stats.front().function_id, "fu-1");
  EXPECT_EQ(sink_.stats.front().backlog, 7u);
  EXPECT_EQ(sink_.stats.front().num_total_tasks, 3u);
  EXPECT_EQ(sink_.stats.front().num_running_inputs, 5u);
  EXPECT_EQ(sink_.failures, 0);
  // Rates: keys lower-cased, values exact, the malformed one skipped and counted.
  const auto& rates = sink_.rates.front().per_hour;
  EXPECT_EQ(rates.size(), 2u);
  EXPECT_EQ(rates.at("a100-80gb"), *parse_usd("2.4984"));
  EXPECT_EQ(rates.at("cpu"), 47160000);
  EXPECT_FALSE(rates.contains("h100"));
  EXPECT_EQ(sink_.error("parse"), static_cast<int>(sink_.rates.size()));
}

TEST_F(ModalSourceTest, NoJobsMeansNoPerJobCalls) {
  start();
  ASSERT_TRUE(run_until([&] { return sink_.successes >= 4 && !sink_.rates.empty(); }));
  EXPECT_EQ(fake_.call_count("TaskList"), 0);
  EXPECT_EQ(fake_.call_count("FunctionGetCurrentStats"), 0);
  EXPECT_EQ(fake_.call_count("WorkspaceBillingReport"), 0);
  EXPECT_TRUE(sink_.billing.empty());
}

TEST_F(ModalSourceTest, BillingReportsBothResolutionsForKnownApps) {
  sink_.known_apps = {"ap-1", "ap-2"};
  const std::int64_t now = unix_now();
  const std::int64_t midnight = now - now % 86400;
  const std::int64_t hour = now - now % 3600;
  fake_.set_billing_items("d", {make_item("ap-1", midnight - 86400, "12345.678901"),
                                make_item("ap-1", midnight, "0.000001"),
                                make_item("ap-3", midnight, "9.99")});  // not asked for
  fake_.set_billing_items("h", {make_item("ap-2", hour - 3600, "0.25")});
  config_.apps_interval = 1h;
  start();
  ASSERT_TRUE(run_until(
      [&] { return sink_.billing_reports("d") >= 1 && sink_.billing_reports("h") >= 1; }));
  for (const auto& report : sink_.billing) {
    // Windows: whole UTC days / hours. (A test that straddles midnight or the hour sees the
    // next window, hence the tolerance.)
    if (report.resolution == "d") {
      EXPECT_EQ(report.end - report.start, 31 * 86400);
      EXPECT_EQ(static_cast<std::int64_t>(report.start) % 86400, 0);
      EXPECT_NEAR(report.start, midnight - 30 * 86400, 86400);
      ASSERT_EQ(report.items.size(), 2u);
      NanoUsd total = 0;
      for (const auto& item : report.items) {
        EXPECT_EQ(item.app_id, "ap-1");
        total += item.cost;
      }
      EXPECT_EQ(total, *parse_usd("12345.678902"));
      EXPECT_EQ(report.items[1].interval_start, midnight);
    } else {
      EXPECT_EQ(report.resolution, "h");
      EXPECT_EQ(report.end - report.start, 25 * 3600);
      EXPECT_EQ(static_cast<std::int64_t>(report.start) % 3600, 0);
      EXPECT_NEAR(report.start, hour - 24 * 3600, 3600);
      ASSERT_EQ(report.items.size(), 1u);
      EXPECT_EQ(report.items[0].cost, 250000000);
    }
  }
  const auto requests = fake_.billing_requests();
  ASSERT_GE(requests.size(), 2u);
  for (const auto& r : requests) {
    ASSERT_EQ(r.app_ids_size(), 2);
    EXPECT_EQ(r.app_ids(0), "ap-1");
    EXPECT_EQ(r.app_ids(1), "ap-2");
  }
  EXPECT_EQ(sink_.error("parse"), 0);
}

TEST_F(ModalSourceTest, InterruptedBillingStreamPublishesNothing) {
  sink_.known_apps = {"ap-1"};
  const std::int64_t now = unix_now();
  const std::int64_t midnight = now - now % 86400;
  fake_.set_billing_items(
      "d", {make_item("ap-1", midnight - 2 * 86400, "1"), make_item("ap-1", midnight - 86400, "2"),
            make_item("ap-1", midnight, "3")});
  fake_.set_billing_abort_after(2);
  config_.apps_interval = 1h;
  start();
  // Both streams (d and h) break in each billing poll: one failed poll, two counted errors.
  ASSERT_TRUE(
      run_until([&] { return sink_.error("grpc_unavailable") >= 4 && sink_.failures >= 2; }));
  EXPECT_TRUE(sink_.billing.empty());

  fake_.set_billing_abort_after(std::nullopt);
  ASSERT_TRUE(run_until([&] { return sink_.billing_reports("d") >= 1; }));
  for (const auto& report : sink_.billing) {
    if (report.resolution == "d") {
      EXPECT_EQ(report.items.size(), 3u);
    }
  }
}

TEST_F(ModalSourceTest, MalformedBillingCostsAreSkippedAndCounted) {
  sink_.known_apps = {"ap-1"};
  const std::int64_t now = unix_now();
  const std::int64_t midnight = now - now % 86400;
  auto no_interval = make_item("ap-1", 0, "1");
  no_interval.clear_interval();
  fake_.set_billing_items(
      "d", {make_item("ap-1", midnight, "1.25"), make_item("ap-1", midnight, "abc"),
            make_item("ap-1", midnight, "-3"), make_item("ap-1", midnight, "1e5"), no_interval,
            make_item("ap-1", midnight, "0.000001")});
  config_.apps_interval = 1h;
  start();
  ASSERT_TRUE(run_until([&] { return sink_.billing_reports("d") >= 2; }));
  for (const auto& report : sink_.billing) {
    if (report.resolution != "d") continue;
    ASSERT_EQ(report.items.size(), 2u);
    EXPECT_EQ(report.items[0].cost + report.items[1].cost, *parse_usd("1.250001"));
  }
  EXPECT_EQ(sink_.error("parse"), 4 * sink_.billing_reports("d"));
  EXPECT_GE(log_lines_containing("example_cost=abc"), 1);
}

TEST_F(ModalSourceTest, UnimplementedIsLoggedOnce) {
  fake_.set_unimplemented("WorkspaceBillingRates", true);
  start();
  ASSERT_TRUE(run_until([&] { return sink_.error("grpc_unimplemented") >= 3; }));
  EXPECT_EQ(log_lines_containing("does not implement this call"), 1);
  EXPECT_GE(sink_.successes, 1);  // the other pollers carry on
}

TEST_F(ModalSourceTest, StopCancelsInFlightCallsAndSilencesTheSink) {
  config_.call_timeout = 30s;
  fake_.set_delay("", 30s);
  start();
  ASSERT_TRUE(run_until([&] { return fake_.call_count("AuthTokenGet") >= 1; }));
  const int before = sink_.total_calls();
  source_->stop();
  source_->stop();  // idempotent
  io_.run_for(100ms);
  EXPECT_EQ(sink_.total_calls(), before);
  source_.reset();
  io_.run_for(50ms);
  EXPECT_EQ(sink_.total_calls(), before);
}

TEST_F(ModalSourceTest, StopRightAfterStartAndDestroyWithoutStart) {
  start();
  source_->stop();
  io_.run_for(50ms);
  EXPECT_EQ(sink_.total_calls(), 0);
  source_ = std::make_unique<ModalSource>(io_, config_, backoff_, sink_);
  source_.reset();
  io_.run_for(20ms);
}

TEST_F(ModalSourceTest, UnusableServerUrlIsAConfigError) {
  config_.server_url = "api.modal.com:443";
  EXPECT_THROW(std::make_unique<ModalSource>(io_, config_, backoff_, sink_), ConfigError);
  config_.server_url = "https://api.modal.com";
  config_.client_version = "1.0\n";
  EXPECT_THROW(std::make_unique<ModalSource>(io_, config_, backoff_, sink_), ConfigError);
}

TEST_F(ModalSourceTest, UnreachableServerIsUnavailable) {
  std::string url;
  {
    FakeModalServer gone;  // bind a port, then free it
    url = gone.address();
  }
  config_.server_url = url;
  config_.call_timeout = 2s;
  start();
  ASSERT_TRUE(run_until([&] { return sink_.failures >= 2; }));
  EXPECT_GE(sink_.error("grpc_unavailable"), 1);
}

}  // namespace
}  // namespace mx
