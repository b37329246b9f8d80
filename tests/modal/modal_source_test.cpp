// ModalSource against the in-process fake Modal server: auth metadata, the JWT life cycle, each
// injected fault counted under its error_type with backoff and recovery, billing streams,
// deadlines, missing credentials, stop().
#include "sources/modal/modal_source.h"

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
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
#include "sources/modal/convert.h"
#include "sources/modal/decimal.h"
#include "support/test_http_server.h"

namespace mx {
namespace {

using namespace std::chrono_literals;
using testing::FakeModalServer;
namespace pb = ::modal::client;

// Records what the source tells the model; the lists it is asked about are set by the test.
class RecordingSink : public ModalSink, public SourceHealth {
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
  void modal_environments(std::vector<ModalEnvironment> e) override {
    check_thread();
    environments.push_back(std::move(e));
  }
  void modal_environment_cost(const std::string& id, std::optional<EnvironmentCost> c) override {
    check_thread();
    ++environment_costs_received;
    environment_costs[id] = std::move(c);
  }
  bool exports_environments() const override { return exports_env; }
  std::vector<std::string> active_job_app_ids() const override {
    ++id_reads;
    return active_apps;
  }
  std::vector<std::string> known_job_app_ids() const override { return known_apps; }
  std::vector<std::string> job_function_ids() const override { return functions; }
  std::optional<std::uint64_t> job_ids_version() const override { return ids_version; }
  bool job_ids_settling() const override { return settling; }
  std::vector<std::string> ended_task_ids() const override { return ended_tasks; }
  std::uint64_t ended_tasks_version() const override { return ended_version; }

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
  std::vector<std::vector<ModalEnvironment>> environments;
  std::map<std::string, std::optional<EnvironmentCost>> environment_costs;  // by environment id
  int environment_costs_received = 0;
  bool exports_env = true;
  std::vector<std::string> active_apps;
  std::vector<std::string> known_apps;
  std::vector<std::string> functions;
  std::optional<std::uint64_t> ids_version;  // nullopt: the source reads the lists every time
  std::vector<std::string> ended_tasks;      // tasks of ended jobs waiting for their finish time
  std::uint64_t ended_version = 0;
  mutable int id_reads = 0;  // calls of active_job_app_ids
  bool settling = false;     // as while the first Kubernetes LIST comes in
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

pb::EnvironmentListItem make_environment(const std::string& name, int gpus, bool limits) {
  pb::EnvironmentListItem e;
  e.set_name(name);
  e.set_environment_id("en-" + name);
  e.set_current_concurrent_tasks(2 * gpus);
  e.set_current_concurrent_gpus(gpus);
  e.set_effective_cycle_spend_limit(500);
  e.set_current_cycle_usage(120.5);
  if (limits) {
    e.set_default_(true);
    e.set_max_concurrent_tasks(100);
    e.set_max_concurrent_gpus(8);
    e.set_cycle_budget_dollars(400);
  }
  return e;
}

pb::EnvironmentBillingSummaryResponse make_summary(const std::string& deployed) {
  pb::EnvironmentBillingSummaryResponse summary;
  summary.set_metered_cost(deployed);
  (*summary.mutable_metered_cost_breakdown())["deployed"] = deployed;
  (*summary.mutable_metered_cost_breakdown())["notebook"] = "0";
  return summary;
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
    source_ =
        std::make_unique<ModalSource>(io_, config_, backoff_, sink_, sink_,
                                      [this](std::string_view method, std::string_view code) {
                                        ++observed_[std::string(method) + "/" + std::string(code)];
                                      });
    source_->start();
  }

  // Drives the io_context for `d` (the pollers keep running).
  void run_for(std::chrono::milliseconds d) {
    const auto until = std::chrono::steady_clock::now() + d;
    while (std::chrono::steady_clock::now() < until) io_.run_for(5ms);
  }

  // `n` jobs, each its own app (one running task) and function, known to the fake and the sink.
  void make_jobs(int n) {
    for (int i = 0; i < n; ++i) {
      const std::string id = std::to_string(i);
      sink_.active_apps.push_back("ap-" + id);
      sink_.known_apps.push_back("ap-" + id);
      sink_.functions.push_back("fu-" + id);
      fake_.add_job(id, static_cast<unsigned>(i % 7));
    }
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
  std::map<std::string, int> observed_;  // method/code -> finished calls
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
    EXPECT_TRUE(call.metadata.at("x-modal-libmodal-version").starts_with("modal-exporter/"))
        << call.metadata.at("x-modal-libmodal-version");
    EXPECT_EQ(call.metadata.at("x-modal-auth-token"), fake_.current_token());
    EXPECT_EQ(call.request_as<pb::AppListRequest>().environment_name(), "main");
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
  config_.libmodal_version = "acme-exporter/2.0";
  start();
  ASSERT_TRUE(run_until([&] { return sink_.successes >= 1; }));
  const auto call = fake_.calls_of("AppList").front();
  EXPECT_EQ(call.metadata.at("x-modal-client-type"), "1");
  EXPECT_EQ(call.metadata.at("x-modal-client-version"), "0.73.0");
  EXPECT_EQ(call.metadata.at("x-modal-libmodal-version"), "acme-exporter/2.0");
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

TEST_F(ModalSourceTest, AShortLivedTokenIsRefreshedBeforeItExpires) {
  // Refreshed after 50-60 % of its 2 s lifetime: never refused as expired.
  fake_.set_token_lifetime(2s);
  config_.rates_interval = 1h;
  start();
  ASSERT_TRUE(run_until([&] { return fake_.call_count("AuthTokenGet") >= 4; }));
  EXPECT_EQ(sink_.error("grpc_unauthenticated"), 0);
  EXPECT_EQ(sink_.failures, 0);
  // Not one fetch per call: the calls in between used the cached token.
  EXPECT_GT(fake_.call_count("AppList"), 2 * fake_.call_count("AuthTokenGet"));
}

TEST_F(ModalSourceTest, KeepsTheCachedTokenWhileRefreshesFail) {
  // exp 9-10 s ahead (whole seconds): the refresh falls due after 4.5-6 s and fails until 6.2 s;
  // with 0.5 s, 1 s, 2 s between attempts it succeeds by 8.2 s, before the token expires.
  fake_.set_token_lifetime(10s);
  config_.rates_interval = 1h;
  start();
  ASSERT_TRUE(run_until([&] { return sink_.successes >= 1; }));
  const std::string token = fake_.current_token();
  fake_.fail_for("AuthTokenGet", 6200ms, grpc::StatusCode::UNAVAILABLE);
  fake_.clear_calls();
  ASSERT_TRUE(run_until([&] { return sink_.error("grpc_unavailable") >= 1; }));
  const int failed_fetches = fake_.call_count("AuthTokenGet");
  EXPECT_EQ(sink_.failures, 0);
  for (const auto& call : fake_.calls_of("AppList")) {
    EXPECT_EQ(call.metadata.at("x-modal-auth-token"), token);
  }
  EXPECT_LE(failed_fetches, 3);
  EXPECT_GE(log_lines_containing("refresh failed; using the cached token"), 1);
  // Recovered: a refresh succeeded, after at most 3 failed attempts (0.5 s, 1 s apart), not one
  // attempt per call (every 50 ms).
  ASSERT_TRUE(run_until([&] { return observed_["AuthTokenGet/ok"] >= 2; }));
  EXPECT_LE(fake_.call_count("AuthTokenGet"), 4);
  EXPECT_EQ(sink_.failures, 0);
  EXPECT_EQ(sink_.error("grpc_unauthenticated"), 0);
}

TEST_F(ModalSourceTest, AuthTokenGetRefusalIsACredentialsError) {
  fake_.set_token_lifetime(2s);
  config_.rates_interval = 1h;
  start();
  ASSERT_TRUE(run_until([&] { return sink_.successes >= 1; }));
  fake_.fail_for("AuthTokenGet", 10min, grpc::StatusCode::PERMISSION_DENIED);
  ASSERT_TRUE(run_until([&] { return sink_.failures >= 2; }));
  EXPECT_GE(sink_.error("grpc_permission_denied"), 1);
  EXPECT_GE(log_lines_containing("refused the credentials"), 1);
  EXPECT_GE(log_lines_containing("retry_in=100ms"), 1);  // the maximum backoff
}

TEST_F(ModalSourceTest, ATokenWithoutExpIsKeptForTwentyMinutes) {
  fake_.set_token_exp_claim(false);
  start();
  ASSERT_TRUE(run_until([&] { return sink_.successes >= 5; }));
  EXPECT_EQ(fake_.call_count("AuthTokenGet"), 1);
  EXPECT_EQ(sink_.failures, 0);
}

// An address where nothing listens: a port bound, then freed, so connections are refused.
std::string closed_port_url() {
  FakeModalServer gone;
  return gone.address();
}

// The first server refuses connections: every call of the first round goes on to the second, so
// no round fails and the source is up from the start; it stays on the server that answers.
TEST_F(ModalSourceTest, AnUnreachableFirstServerIsPassedOverInTheSameRound) {
  config_.server_url = closed_port_url() + ", " + fake_.address();
  config_.call_timeout = 2s;
  start();
  ASSERT_TRUE(run_until([&] { return sink_.successes >= 3; }));
  EXPECT_EQ(sink_.failures, 0);
  EXPECT_EQ(sink_.error("grpc_unavailable"), 0);  // no call failed; one attempt did
  EXPECT_GE(observed_["AuthTokenGet/unavailable"], 1);
  EXPECT_EQ(log_lines_containing("failing over"), 1);
  EXPECT_GE(log_lines_containing("server=" + fake_.address()), 1);
}

// A server that answers stays in use when one method fails: AuthTokenGet answering UNAVAILABLE
// (the other methods answering, the cached JWT still valid) is that method's error, not the
// server's, and the source stays up. The other server of the list is unreachable.
TEST_F(ModalSourceTest, OneMethodsUnavailableDoesNotMoveToAnotherServer) {
  config_.server_url = fake_.address() + "," + closed_port_url();
  // exp 5-6 s ahead (whole seconds): the refresh falls due after 2.5-3.6 s and fails until
  // 3.7 s; with 0.5 s and 1 s between attempts it succeeds before the token expires.
  fake_.set_token_lifetime(6s);
  config_.rates_interval = 1h;
  start();
  ASSERT_TRUE(run_until([&] { return sink_.successes >= 1; }));
  fake_.fail_for("AuthTokenGet", 3700ms, grpc::StatusCode::UNAVAILABLE);
  ASSERT_TRUE(run_until([&] { return observed_["AuthTokenGet/unavailable"] >= 1; }));
  const int app_lists = fake_.call_count("AppList");
  ASSERT_TRUE(run_until([&] { return observed_["AuthTokenGet/ok"] >= 2; }));
  run_for(200ms);
  EXPECT_EQ(sink_.failures, 0);
  EXPECT_EQ(log_lines_containing("failing over"), 0);
  EXPECT_EQ(observed_["AppList/unavailable"], 0);
  EXPECT_GT(fake_.call_count("AppList"), app_lists + 5);  // still answered by the fake
}

// No server of the list answers: each call tries both before the round fails, and the source is
// down.
TEST_F(ModalSourceTest, TheSourceIsDownWhenNoServerAnswers) {
  config_.server_url = closed_port_url() + ", " + closed_port_url();
  config_.call_timeout = 2s;
  start();
  ASSERT_TRUE(run_until([&] { return sink_.failures >= 1; }));
  EXPECT_GE(observed_["AuthTokenGet/unavailable"], 2);  // one attempt per server
  EXPECT_EQ(sink_.successes, 0);
  EXPECT_GE(sink_.error("grpc_unavailable"), 1);
  EXPECT_GE(log_lines_containing("modal poll failed"), 1);
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
  sink_.ended_tasks = {"ta-1", "ta-2"};
  sink_.ended_version = 1;
  start();

  ASSERT_TRUE(run_until([&] {
    return sink_.task_infos.size() >= 2 && !sink_.stats.empty() && !sink_.rates.empty() &&
           sink_.task_lists >= 3 && sink_.error("grpc_not_found") >= 2;
  }));
  // One environment-wide TaskList per round, split by app.
  for (const auto& call : fake_.calls_of("TaskList")) {
    const auto request = call.request_as<pb::TaskListRequest>();
    EXPECT_EQ(request.environment_name(), "main");
    EXPECT_EQ(request.app_id(), "");
  }
  ASSERT_EQ(sink_.tasks["ap-1"].size(), 2u);
  EXPECT_EQ(sink_.tasks["ap-1"][0].task_id, "ta-1");
  EXPECT_EQ(*sink_.tasks["ap-1"][0].enqueued_at, 90);
  EXPECT_EQ(*sink_.tasks["ap-1"][0].started_at, 100);
  EXPECT_EQ(sink_.tasks["ap-1"][1].app_id, "ap-1");
  EXPECT_FALSE(sink_.tasks["ap-1"][1].started_at);
  // Task info: once per wanted task, not on every poll.
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
    // Windows: from the start of an interval to now, as Modal's clients ask.
    EXPECT_NEAR(report.end, static_cast<double>(unix_now()), 30);
    if (report.resolution == "d") {
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

TEST_F(ModalSourceTest, BillingCostsAsPythonDecimalsPrintThem) {
  sink_.known_apps = {"ap-1"};
  const std::int64_t now = unix_now();
  const std::int64_t midnight = now - now % 86400;
  auto no_interval = make_item("ap-1", 0, "1");
  no_interval.clear_interval();
  fake_.set_billing_items(
      "d", {make_item("ap-1", midnight, "1.25"), make_item("ap-1", midnight, "abc"),
            make_item("ap-1", midnight, "-0.25"), make_item("ap-1", midnight, "1E-7"),
            make_item("ap-1", midnight, "NaN"), make_item("ap-1", midnight, "-Infinity"),
            no_interval, make_item("ap-1", midnight, "2.5E-8")});
  config_.apps_interval = 1h;
  start();
  ASSERT_TRUE(run_until([&] { return sink_.billing_reports("d") >= 2; }));
  for (const auto& report : sink_.billing) {
    if (report.resolution != "d") continue;
    ASSERT_EQ(report.items.size(), 4u);
    NanoUsd total = 0;
    for (const auto& item : report.items) total += item.cost;
    EXPECT_EQ(total, *parse_usd("1.000000125"));  // the credit lowers the sum
    // make_item splits each cost onto "gpu"; a NaN split entry would be dropped too.
    EXPECT_EQ(report.items[1].cost_by_resource.at("gpu"), -250000000);
  }
  // abc, NaN, -Infinity, no interval: per report, each item once (the split of a dropped item is
  // not looked at).
  EXPECT_EQ(sink_.error("parse"), 4 * sink_.billing_reports("d"));
  EXPECT_GE(log_lines_containing("example_cost=abc"), 1);
  EXPECT_GE(log_lines_containing("not_finite=2"), 1);
}

TEST_F(ModalSourceTest, DeprecatedRateKeysAreDroppedAndLoggedOnce) {
  fake_.set_rates({{"A100-80GB", "2.4984"}, {"legacy-gpu", "1.0"}, {"removed-gpu", "3.0"}});
  fake_.set_rate_deprecations({{"legacy-gpu", "renamed"}}, {{"removed-gpu", "gone"}});
  start();
  ASSERT_TRUE(run_until([&] { return sink_.rates.size() >= 3; }));
  for (const auto& r : sink_.rates) {
    EXPECT_EQ(r.per_hour.size(), 1u);
    EXPECT_TRUE(r.per_hour.contains("a100-80gb"));
  }
  EXPECT_EQ(log_lines_containing("rate key is deprecated"), 2);
  EXPECT_EQ(sink_.error("parse"), 0);
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
  source_ = std::make_unique<ModalSource>(io_, config_, backoff_, sink_, sink_);
  source_.reset();
  io_.run_for(20ms);
}

TEST_F(ModalSourceTest, UnsendableClientVersionIsAConfigError) {
  config_.client_version = "1.0\n";
  EXPECT_THROW(std::make_unique<ModalSource>(io_, config_, backoff_, sink_, sink_), ConfigError);
}

// Modal's endpoints speak TLS. The gRPC linked into the exporter (without its optional plugins,
// src/sources/modal/rpc.cpp) completes TLS calls, and trusts the CA bundle SSL_CERT_FILE names,
// as OpenSSL and the other sources do.
TEST_F(ModalSourceTest, PollsOverTlsTrustingTheBundleSslCertFileNames) {
  const auto cert = mx::testing::make_test_certificate();
  FakeModalServer tls_fake(FakeModalServer::Tls{cert.cert_pem, cert.key_pem});
  tls_fake.set_apps({make_app("ap-1", "job-a", 2)});
  config_.server_url = tls_fake.address();
  ASSERT_TRUE(config_.server_url.starts_with("https://"));
  setenv("SSL_CERT_FILE", write("ca.pem", cert.cert_pem).c_str(), 1);
  start();
  const bool polled = run_until([&] { return sink_.successes >= 2; });
  unsetenv("SSL_CERT_FILE");
  ASSERT_TRUE(polled);
  ASSERT_FALSE(sink_.apps.empty());
  EXPECT_EQ(sink_.apps.back().at(0).app_id, "ap-1");
  EXPECT_FALSE(tls_fake.calls_of("AppList").empty());
  EXPECT_EQ(sink_.failures, 0);
}

// ... and refuses a server whose certificate no trusted authority signed.
TEST_F(ModalSourceTest, AnUntrustedModalCertificateFailsEveryCall) {
  const auto cert = mx::testing::make_test_certificate();
  FakeModalServer tls_fake(FakeModalServer::Tls{cert.cert_pem, cert.key_pem});
  tls_fake.set_apps({make_app("ap-1", "job-a", 2)});
  config_.server_url = tls_fake.address();
  config_.call_timeout = 2s;
  unsetenv("SSL_CERT_FILE");
  start();
  ASSERT_TRUE(run_until([&] { return sink_.failures >= 2; }));
  EXPECT_EQ(sink_.successes, 0);
  EXPECT_TRUE(tls_fake.calls_of("AppList").empty());
  EXPECT_TRUE(tls_fake.calls_of("AuthTokenGet").empty());
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

TEST_F(ModalSourceTest, TaskListFallsBackToPerAppWhereTheServerRefusesTheEnvironmentForm) {
  fake_.set_task_list_requires_app(true);
  sink_.active_apps = {"ap-1", "ap-2"};
  start();
  ASSERT_TRUE(run_until([&] { return sink_.task_lists >= 6; }));
  const auto calls = fake_.calls_of("TaskList");
  EXPECT_EQ(calls.front().request_as<pb::TaskListRequest>().environment_name(), "main");
  EXPECT_EQ(calls.front().request_as<pb::TaskListRequest>().app_id(), "");
  for (std::size_t i = 1; i < calls.size(); ++i) {
    EXPECT_NE(calls[i].request_as<pb::TaskListRequest>().app_id(), "");
  }
  EXPECT_EQ(log_lines_containing("refuses the environment-wide form"), 1);
  EXPECT_EQ(sink_.failures, 0);
  EXPECT_EQ(sink_.error("grpc_invalid_argument"), 1);
}

// A listed task is running: Modal has no finish time for it yet. TaskGetInfo is asked for the
// tasks of ended jobs that wait for it (ModalSink::ended_task_ids), once each while wanted.
TEST_F(ModalSourceTest, TaskInfoIsAskedForTheTasksOfEndedJobsOnly) {
  sink_.active_apps = {"ap-1"};
  pb::TaskStats t;
  t.set_task_id("ta-1");
  t.set_app_id("ap-1");
  pb::TaskGetInfoResponse info;
  info.set_app_id("ap-1");
  info.mutable_info()->set_finished_at(1700000100);
  fake_.set_task_info("ta-1", info);
  fake_.set_tasks("ap-1", {t});
  start();
  ASSERT_TRUE(run_until([&] { return sink_.task_lists >= 5; }));
  EXPECT_EQ(fake_.call_count("TaskGetInfo"), 0);  // listed, so still running

  fake_.set_tasks("ap-1", {});
  sink_.ended_tasks = {"ta-1"};
  sink_.ended_version = 1;
  ASSERT_TRUE(run_until([&] { return sink_.task_infos.size() == 1; }));
  EXPECT_EQ(*sink_.task_infos[0].finished_at, 1700000100);
  const int lists = sink_.task_lists;
  ASSERT_TRUE(run_until([&] { return sink_.task_lists >= lists + 3; }));
  EXPECT_EQ(fake_.call_count("TaskGetInfo"), 1);  // once per task

  // Forgotten once no longer wanted: wanted again, it is asked about again.
  sink_.ended_tasks = {};
  sink_.ended_version = 2;
  ASSERT_TRUE(run_until([&] { return sink_.task_lists >= lists + 5; }));
  sink_.ended_tasks = {"ta-1"};
  sink_.ended_version = 3;
  ASSERT_TRUE(run_until([&] { return sink_.task_infos.size() == 2; }));
  EXPECT_EQ(fake_.call_count("TaskGetInfo"), 2);
}

// A failure that pauses the budget asks the task again after the pause; NOT_FOUND does not.
TEST_F(ModalSourceTest, TaskInfoIsAskedAgainAfterAPauseNotAfterNotFound) {
  pb::TaskGetInfoResponse info;
  info.set_app_id("ap-1");
  info.mutable_info()->set_finished_at(1700000100);
  fake_.set_task_info("ta-1", info);
  fake_.fail_next("TaskGetInfo", 1, grpc::StatusCode::RESOURCE_EXHAUSTED);
  sink_.ended_tasks = {"ta-1", "ta-gone"};
  sink_.ended_version = 1;
  start();
  ASSERT_TRUE(run_until([&] { return sink_.task_infos.size() == 1; }));
  EXPECT_EQ(sink_.task_infos[0].task_id, "ta-1");
  run_for(500ms);
  // ta-1: failed once, then answered; ta-gone: NOT_FOUND, not asked again.
  EXPECT_EQ(fake_.call_count("TaskGetInfo"), 3);
  EXPECT_EQ(sink_.task_infos.size(), 1u);
}

TEST_F(ModalSourceTest, BillingAndTasksRunRightAfterTheJobsAppear) {
  // Long intervals: without the early rounds nothing would be asked for an hour.
  config_.tasks_interval = 300ms;
  config_.billing_interval = 1h;
  config_.rates_interval = 1h;
  sink_.settling = true;
  start();
  ASSERT_TRUE(run_until([&] { return sink_.successes >= 3; }));
  EXPECT_EQ(fake_.call_count("WorkspaceBillingReport"), 0);  // no job, no billing call
  // The Kubernetes sync brings the jobs.
  sink_.known_apps = {"ap-1"};
  sink_.active_apps = {"ap-1"};
  sink_.settling = false;
  ASSERT_TRUE(run_until([&] {
    return sink_.billing_reports("d") == 1 && sink_.billing_reports("h") == 1 &&
           sink_.task_lists >= 1;
  }));
  // A new job's app: its tasks are listed early (not before tasks_interval after the last
  // round); billing waits for its interval, since a new app has no complete billed hour yet.
  sink_.known_apps.push_back("ap-2");
  sink_.active_apps.push_back("ap-2");
  ASSERT_TRUE(run_until([&] { return sink_.tasks.contains("ap-2"); }));
  run_for(1000ms);
  EXPECT_EQ(sink_.billing_reports("d"), 1);
  EXPECT_EQ(sink_.billing_reports("h"), 1);
  EXPECT_EQ(fake_.billing_requests().size(), 2u);
  // And at most one TaskList per tasks_interval (here 300 ms) over that second, plus one.
  fake_.clear_calls();
  run_for(1500ms);
  EXPECT_LE(fake_.call_count("TaskList"), 6);
}

// With a sink that versions its id lists, the source reads them when the version moves (and
// once per tasks round), not on every watch; a new version still brings the early rounds.
TEST_F(ModalSourceTest, IdListsAreReadAgainOnlyWhenTheirVersionMoves) {
  config_.tasks_interval = 300ms;
  config_.billing_interval = 1h;
  config_.rates_interval = 1h;
  sink_.ids_version = 1;
  sink_.settling = true;
  start();
  ASSERT_TRUE(run_until([&] { return sink_.successes >= 3; }));
  sink_.known_apps = {"ap-1"};
  sink_.active_apps = {"ap-1"};
  sink_.ids_version = 2;
  sink_.settling = false;
  ASSERT_TRUE(run_until([&] { return sink_.billing_reports("d") == 1 && sink_.task_lists >= 1; }));

  // Watches run every ~12 ms here: about 120 in 1.5 s, against a handful of tasks rounds.
  fake_.clear_calls();
  const int reads = sink_.id_reads;
  run_for(1500ms);
  EXPECT_LE(sink_.id_reads - reads, fake_.call_count("TaskList") + 1);

  sink_.known_apps.push_back("ap-2");
  sink_.active_apps.push_back("ap-2");
  sink_.ids_version = 3;
  ASSERT_TRUE(run_until([&] { return sink_.tasks.contains("ap-2"); }));
}

TEST_F(ModalSourceTest, ResourceExhaustedSlowsTheBudgetAndMetricsRecover) {
  config_.max_calls_per_second = 50;
  config_.rates_interval = 1h;
  make_jobs(10);
  start();
  ASSERT_TRUE(run_until([&] { return sink_.stats.size() >= 20; }));
  fake_.fail_for("FunctionGetCurrentStats", 1500ms, grpc::StatusCode::RESOURCE_EXHAUSTED);
  fake_.clear_calls();
  const auto stats_before = sink_.stats.size();
  run_for(1500ms);
  // At 50/s the budget alone would allow ~75 calls; backoff (20 ms doubling to 100 ms here)
  // lets through a fraction.
  const int during = fake_.call_count("FunctionGetCurrentStats");
  EXPECT_LE(during, 30);
  EXPECT_GE(sink_.error("grpc_resource_exhausted"), 3);
  EXPECT_EQ(observed_["FunctionGetCurrentStats/resource_exhausted"],
            sink_.error("grpc_resource_exhausted"));
  EXPECT_GE(log_lines_containing("modal call budget paused"), 3);
  // Recovered: fresh values again.
  ASSERT_TRUE(run_until([&] { return sink_.stats.size() >= stats_before + 20; }));
}

TEST_F(ModalSourceTest, RetryAfterFromTheServerPausesTheBudget) {
  config_.max_calls_per_second = 50;
  config_.rates_interval = 1h;
  make_jobs(10);
  start();
  ASSERT_TRUE(run_until([&] { return sink_.stats.size() >= 10; }));
  fake_.fail_next("FunctionGetCurrentStats", 1, grpc::StatusCode::UNAVAILABLE, 1.0);
  ASSERT_TRUE(run_until([&] { return sink_.error("grpc_unavailable") >= 1; }));
  const int at_failure = fake_.call_count("FunctionGetCurrentStats");
  run_for(600ms);
  // Only calls already in flight when the failure came back; ~30 without the pause.
  EXPECT_LE(fake_.call_count("FunctionGetCurrentStats"), at_failure + 4);
  EXPECT_GE(log_lines_containing("retry_in=1s"), 1);
  const auto stats = sink_.stats.size();
  ASSERT_TRUE(run_until([&] { return sink_.stats.size() >= stats + 10; }));
}

TEST_F(ModalSourceTest, CallsAreCountedPerMethodAndCode) {
  sink_.functions = {"fu-gone"};
  start();
  ASSERT_TRUE(run_until([&] {
    return observed_["AppList/ok"] >= 2 && observed_["FunctionGetCurrentStats/not_found"] >= 1;
  }));
  EXPECT_EQ(observed_["AuthTokenGet/ok"], 1);
  EXPECT_EQ(observed_["AppList/ok"], fake_.call_count("AppList"));
}

// Environments: the list every environments_interval, each environment's month-to-date summary
// (asked from the first instant of the UTC month), the calls counted.
TEST_F(ModalSourceTest, EnvironmentsAndTheirMonthToDateCost) {
  config_.environments_interval = 50ms;
  fake_.set_environments({make_environment("main", 7, true), make_environment("dev", 0, false)});
  fake_.set_environment_billing("en-main", make_summary("12.5"));
  fake_.set_environment_billing("en-dev", make_summary("1E-7"));
  start();
  ASSERT_TRUE(run_until([&] {
    return sink_.environment_costs.size() == 2 && sink_.environments.size() >= 2 &&
           fake_.call_count("EnvironmentBillingSummary") >= 2;
  }));
  const auto& envs = sink_.environments.back();
  ASSERT_EQ(envs.size(), 2u);
  EXPECT_EQ(envs[0].name, "main");
  EXPECT_EQ(envs[0].concurrent_gpus, 7);
  EXPECT_EQ(envs[0].max_concurrent_gpus, std::optional<std::int64_t>(8));
  EXPECT_EQ(envs[1].name, "dev");
  EXPECT_FALSE(envs[1].max_concurrent_gpus);
  EXPECT_FALSE(envs[1].cycle_budget_usd);
  ASSERT_TRUE(sink_.environment_costs.at("en-main"));
  EXPECT_EQ(sink_.environment_costs.at("en-main")->total, std::optional<NanoUsd>(12500000000));
  EXPECT_EQ(sink_.environment_costs.at("en-dev")->by_category.at("deployed"), 100);

  const std::int64_t now = unix_now();
  std::set<std::string> asked;
  for (const auto& call : fake_.calls_of("EnvironmentBillingSummary")) {
    pb::EnvironmentBillingSummaryRequest request;
    ASSERT_TRUE(request.ParseFromString(call.request));
    asked.insert(request.environment_id());
    const auto start = request.start_timestamp().seconds();
    EXPECT_LE(start, now);
    EXPECT_GT(start, now - 31 * 86400);
    EXPECT_EQ(start, modal_convert::month_start(start)) << "not the first instant of a month";
    EXPECT_EQ(request.start_timestamp().nanos(), 0);
  }
  EXPECT_EQ(asked, (std::set<std::string>{"en-main", "en-dev"}));
  // Every call the server answered is counted (once no call is in flight).
  EXPECT_GE(observed_["EnvironmentList/ok"], 2);
  EXPECT_TRUE(run_until([&] {
    return observed_["EnvironmentList/ok"] == fake_.call_count("EnvironmentList") &&
           observed_["EnvironmentBillingSummary/ok"] ==
               fake_.call_count("EnvironmentBillingSummary");
  })) << ::testing::PrintToString(observed_);
  EXPECT_EQ(sink_.failures, 0);
}

// No public client calls EnvironmentBillingSummary: a token may be refused it. That is an
// answer (no cost for the environment, logged once each), not a failure of the source.
TEST_F(ModalSourceTest, ARefusedSummaryLeavesTheSourceUp) {
  config_.environments_interval = 50ms;
  fake_.set_environments({make_environment("main", 7, true), make_environment("dev", 0, false)});
  fake_.set_environment_billing("en-main", make_summary("12.5"));
  fake_.refuse_environment_billing("en-main", grpc::StatusCode::UNIMPLEMENTED);
  fake_.refuse_environment_billing("en-dev", grpc::StatusCode::PERMISSION_DENIED);
  start();
  ASSERT_TRUE(run_until([&] {
    return observed_["EnvironmentBillingSummary/permission_denied"] >= 3 &&
           observed_["EnvironmentBillingSummary/unimplemented"] >= 3 && sink_.successes >= 3;
  }));
  EXPECT_EQ(sink_.failures, 0);
  EXPECT_EQ(sink_.error("grpc_permission_denied"), 0);
  EXPECT_EQ(sink_.error("grpc_unimplemented"), 0);
  EXPECT_EQ(log_lines_containing("refuses the environment's billing summary"), 2);
  EXPECT_EQ(log_lines_containing("modal poll failed"), 0);
  ASSERT_TRUE(sink_.environment_costs.contains("en-dev"));
  EXPECT_FALSE(sink_.environment_costs.at("en-dev"));
  EXPECT_FALSE(sink_.environment_costs.at("en-main"));
  EXPECT_FALSE(sink_.environments.empty());

  // Allowed again: the cost comes back.
  fake_.refuse_environment_billing("en-main", std::nullopt);
  ASSERT_TRUE(run_until([&] {
    auto it = sink_.environment_costs.find("en-main");
    return it != sink_.environment_costs.end() && it->second.has_value();
  }));
}

TEST_F(ModalSourceTest, AFailedSummaryFailsTheRoundLikeAnyCall) {
  config_.environments_interval = 50ms;
  fake_.set_environments({make_environment("main", 7, true)});
  fake_.set_environment_billing("en-main", make_summary("12.5"));
  fake_.fail_next("EnvironmentBillingSummary", 2, grpc::StatusCode::INTERNAL);
  start();
  ASSERT_TRUE(run_until([&] {
    auto it = sink_.environment_costs.find("en-main");
    return it != sink_.environment_costs.end() && it->second.has_value();
  }));
  // Each failed call fails its round: counted, the source marked failed, logged once.
  EXPECT_EQ(sink_.error("grpc_internal"), 2);
  EXPECT_EQ(sink_.failures, 2);
  EXPECT_EQ(log_lines_containing("method=EnvironmentBillingSummary"), 2);
}

// The early round that a newly listed environment asks for may come just as the costs poller's
// own wait has expired and sits in the io_context's queue, past cancelling. It must not start a
// second round over the first: the first call to end would then end both, and the other's
// failure would be counted but neither logged nor reported as a failed round.
TEST_F(ModalSourceTest, AnEarlyRoundDoesNotStartASecondRoundOverOneAlreadyDue) {
  config_.environments_interval = 1h;  // one EnvironmentList; its answer asks for the early round
  fake_.set_environments({make_environment("main", 7, true)});
  fake_.set_environment_billing("en-main", make_summary("12.5"));
  fake_.set_delay("EnvironmentList", 200ms);
  fake_.fail_next("EnvironmentBillingSummary", 2, grpc::StatusCode::INTERNAL);
  start();
  ASSERT_TRUE(run_until([&] { return fake_.call_count("EnvironmentList") >= 1; }));
  // Nothing runs the io_context while the answer arrives (posted to it) and the costs poller's
  // 50 ms wait expires. When it runs again, the answer is handled first, with the expired wait
  // already taken off the timer and queued behind it.
  std::this_thread::sleep_for(1s);
  ASSERT_TRUE(run_until([&] {
    auto it = sink_.environment_costs.find("en-main");
    return it != sink_.environment_costs.end() && it->second.has_value();
  }));
  EXPECT_EQ(sink_.error("grpc_internal"), 2);
  EXPECT_EQ(fake_.call_count("EnvironmentBillingSummary"), 3);
  EXPECT_EQ(sink_.failures, 2);
  EXPECT_EQ(log_lines_containing("method=EnvironmentBillingSummary"), 2);
}

// A summary is asked every billing_interval, but a newly listed environment's at once.
TEST_F(ModalSourceTest, ANewEnvironmentGetsItsCostBeforeTheBillingInterval) {
  config_.environments_interval = 50ms;
  config_.billing_interval = 1h;
  fake_.set_environments({make_environment("main", 7, true)});
  fake_.set_environment_billing("en-main", make_summary("12.5"));
  fake_.set_environment_billing("en-dev", make_summary("1"));
  start();
  ASSERT_TRUE(run_until([&] { return sink_.environment_costs.contains("en-main"); }));
  fake_.set_environments({make_environment("main", 7, true), make_environment("dev", 0, false)});
  ASSERT_TRUE(run_until([&] { return sink_.environment_costs.contains("en-dev"); }));
  // Each asked once: the early round is not repeated for environments already asked about.
  const auto before = fake_.call_count("EnvironmentList");
  ASSERT_TRUE(run_until([&] { return fake_.call_count("EnvironmentList") >= before + 3; }));
  EXPECT_EQ(fake_.call_count("EnvironmentBillingSummary"), 3);
}

// With sharding, only the exporter that shows the environment series asks for them.
TEST_F(ModalSourceTest, NoEnvironmentCallsWhereTheSeriesAreNotShown) {
  config_.environments_interval = 50ms;
  fake_.set_environments({make_environment("main", 7, true)});
  sink_.exports_env = false;
  start();
  ASSERT_TRUE(run_until([&] { return sink_.successes >= 4; }));
  EXPECT_EQ(fake_.call_count("EnvironmentList"), 0);
  EXPECT_EQ(fake_.call_count("EnvironmentBillingSummary"), 0);
  EXPECT_TRUE(sink_.environments.empty());
}

// Issue 13's footprint: 1,000 running jobs, each its own app and function, default intervals and
// budget. Over 16 s (rounds at 0 s and 15 s): at most one TaskList per tasks_interval, and the
// per-object calls within max_calls_per_second.
TEST_F(ModalSourceTest, ThousandJobsStayWithinTheCallBudget) {
  const auto server = config_.server_url;
  const auto id_file = config_.token_id_file, secret_file = config_.token_secret_file;
  config_ = ModalConfig{};
  config_.server_url = server;
  config_.token_id_file = id_file;
  config_.token_secret_file = secret_file;
  make_jobs(1000);
  fake_.set_environments({make_environment("main", 7, true), make_environment("dev", 0, false),
                          make_environment("staging", 1, false)});
  const auto started = std::chrono::steady_clock::now();
  start();
  run_for(16000ms);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const auto counts = fake_.call_counts();
  auto count = [&](const char* m) { return counts.contains(m) ? counts.at(m) : 0; };
  EXPECT_LE(count("TaskList"), 2);  // t = 0 and t = 15 s
  EXPECT_GE(count("TaskList"), 1);
  const int budgeted = count("FunctionGetCurrentStats") + count("TaskGetInfo");
  EXPECT_LE(budgeted, static_cast<int>(config_.max_calls_per_second * seconds) + 1);
  EXPECT_GE(budgeted, 40);  // the budget is used, not starved
  // One EnvironmentList per minute, one summary per environment per billing_interval.
  EXPECT_EQ(count("EnvironmentList"), 1);
  EXPECT_LE(count("EnvironmentBillingSummary"), 3);
  const int fixed = count("AppList") + count("TaskList") + count("WorkspaceBillingReport") +
                    count("WorkspaceBillingRates") + count("AuthTokenGet") +
                    count("EnvironmentList") + count("EnvironmentBillingSummary");
  EXPECT_LE(fixed, 2 + 2 + 2 + 1 + 1 + 1 + 3);
  EXPECT_EQ(sink_.failures, 0);
  EXPECT_EQ(sink_.tasks.size(), 1000u);  // every app's tasks from the one call
}

}  // namespace
}  // namespace mx
