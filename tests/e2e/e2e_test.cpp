// End to end: the simulator, the exporter and a real Prometheus (Debian package) on loopback.
// (1) every seed query (corrected, monitoring/seed-queries.yaml) returns data through
// Prometheus's HTTP API; (2) what Prometheus holds equals the simulator's ground truth;
// (3) when the simulator's Kubernetes or Modal side goes down, modal_exporter_source_up drops
// to 0, the alert of monitoring/prometheus-rules.yaml selects it, and the last known job metrics
// are still served.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "support/e2e_world.h"
#include "support/http_client.h"
#include "support/process.h"

namespace mx {
namespace {

using nlohmann::json;
using testing::ChildProcess;
using testing::http_get;
using testing::read_file;
using testing::wait_until;

class EndToEnd : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = testing::make_scratch_dir("modal-e2e");
    ASSERT_FALSE(dir_.empty());
    sim_ = new testing::Simulator(MX_SIM_BINARY, dir_, 12, 7);
    ASSERT_NE(sim_->port(), 0) << sim_->log();
    exporter_env_ = sim_->exporter_env();
    exporter_args_ = {MX_EXPORTER_BINARY, "--config", testing::write_fast_exporter_config(dir_),
                      "--kubeconfig", sim_->kubeconfig(), "--state.file", dir_ + "/state.json",
                      // Debug logs too must never carry a credential (the last test checks).
                      "--log.level=debug"};
    // A fixed port, so that Prometheus scrapes the same target after an exporter restart.
    exporter_port_ = testing::free_port();
    start_exporter("exporter.log");

    prometheus_ = new testing::Prometheus(MX_PROMETHEUS_BINARY, dir_,
                                          "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                                          "rule_files: ['" MX_SOURCE_DIR
                                          "/monitoring/prometheus-rules.yaml']\n"
                                          "scrape_configs:\n"
                                          "  - job_name: modal-exporter\n"
                                          "    honor_labels: true\n"
                                          "    static_configs: [{targets: ['127.0.0.1:" +
                                              std::to_string(exporter_port_) + "']}]\n");

    // Every source ready, then let the world run for a while and freeze it.
    ASSERT_TRUE(wait_until([] {
      try {
        return http_get(exporter_port_, "/readyz").status == 200;
      } catch (...) {
        return false;
      }
    })) << http_get(exporter_port_, "/readyz").body
        << read_file(dir_ + "/exporter.log");
    sim_->control("resume");
    // The scenario: 15 s of simulated life (arrivals, queueing, runs, failures, deletions).
    std::this_thread::sleep_for(std::chrono::seconds(15));
    sim_->control("pause");
  }

  static void TearDownTestSuite() {
    testing::stop_all({prometheus_ ? &prometheus_->process() : nullptr, exporter_,
                       sim_ ? &sim_->process() : nullptr});
    delete prometheus_;
    delete exporter_;
    delete sim_;
    // Kept when anything failed, for the logs and Prometheus's TSDB.
    testing::remove_scratch_dir_unless_failed(dir_);
  }

  static json query(const std::string& promql) { return prometheus_->query(promql); }

  // Instant vector as {label values joined by '|' (in `labels` order) -> value}.
  static std::map<std::string, double> vector_of(const std::string& promql,
                                                 const std::vector<std::string>& labels) {
    return prometheus_->vector_of(promql, labels);
  }

  static json truth() { return sim_->truth(); }
  static void expect_prometheus_holds_truth();

  static void start_exporter(const std::string& log_name) {
    auto args = exporter_args_;
    args.push_back("--web.listen-address=127.0.0.1:" + std::to_string(exporter_port_));
    exporter_ = new ChildProcess(args, dir_ + "/" + log_name, exporter_env_);
    ASSERT_NE(testing::wait_listening(*exporter_), 0) << read_file(dir_ + "/" + log_name);
  }

  static inline std::string dir_;
  static inline testing::Simulator* sim_ = nullptr;
  static inline ChildProcess* exporter_ = nullptr;
  static inline testing::Prometheus* prometheus_ = nullptr;
  static inline std::vector<std::string> exporter_args_, exporter_env_;
  static inline std::uint16_t exporter_port_ = 0;
};

// Compares a Prometheus vector with a truth map; returns "" when equal within `tolerance`
// (relative) or `absolute`, else a description of the differences.
std::string compare(const std::map<std::string, double>& got, const json& want, double tolerance,
                    double absolute) {
  std::string diff;
  for (const auto& [key, value] : want.items()) {
    auto it = got.find(key);
    const double w = value.get<double>();
    if (it == got.end()) {
      diff += key + ": missing (want " + std::to_string(w) + "); ";
    } else if (std::fabs(it->second - w) >
               std::max(tolerance * std::max(1.0, std::fabs(w)), absolute)) {
      diff += key + ": got " + std::to_string(it->second) + " want " + std::to_string(w) + "; ";
    }
  }
  for (const auto& [key, value] : got) {
    if (!want.contains(key)) diff += key + ": unexpected " + std::to_string(value) + "; ";
  }
  return diff;
}

// Waits until what Prometheus holds equals the simulator's truth, metric by metric.
void EndToEnd::expect_prometheus_holds_truth() {
  struct Check {
    std::string name, promql;
    std::vector<std::string> labels;
    std::string truth_key;
    double tolerance;
    double absolute = 0;
  };
  const json t = truth();
  // The cost split is compared below; the world must have some for that to mean anything.
  EXPECT_FALSE(t["app_cost_daily"].empty());
  // Sums of histogram observations: Pods' creationTimestamp has whole seconds, so each
  // observation may differ from the simulator's exact time by up to a second.
  auto observations = [&](const char* key) {
    double n = 0;
    for (const auto& [k, v] : t[key].items()) n += v.get<double>();
    return n;
  };
  const std::vector<Check> checks = {
      {"jobs per status", "modal_jobs_total", {"status", "gpu_type", "replicas"}, "jobs_total", 0},
      {"active per GPU type", "modal_jobs_active", {"gpu_type"}, "jobs_active", 0},
      {"replicas per job", "modal_job_replicas", {"namespace", "job_name"}, "job_replicas", 0},
      {"cold starts",
       "modal_function_cold_starts_total",
       {"namespace", "job_name"},
       "cold_starts",
       0},
      {"hourly cost",
       "modal_cost_estimate_usd{time_period=\"hourly\"}",
       {"namespace", "job_name"},
       "cost_hourly",
       1e-9},
      {"daily cost",
       "modal_cost_estimate_usd{time_period=\"daily\"}",
       {"namespace", "job_name"},
       "cost_daily",
       1e-9},
      {"daily cost by resource",
       "modal_app_cost_usd{time_period=\"daily\"}",
       {"app_id", "resource"},
       "app_cost_daily",
       1e-9},
      {"GPU utilization",
       "modal_gpu_utilization",
       {"namespace", "job_name"},
       "gpu_utilization",
       1e-9},
      {"bandwidth",
       "modal_network_bandwidth_mbps",
       {"namespace", "job_name", "direction"},
       "bandwidth_mbps",
       0.01},
      {"operator Warning Events",
       "modal_operator_errors_total{component=\"operator\"}",
       {"error_type"},
       "operator_errors",
       0},
      {"i6pn jobs", "modal_i6pn_jobs_total", {"replicas"}, "i6pn_total", 0},
      {"webhook mutations", "modal_webhook_requests_total", {"method", "status"}, "webhook", 0},
      {"durations observed",
       "modal_job_duration_seconds_count",
       {"status", "gpu_type"},
       "duration_count",
       0},
      {"duration sums",
       "modal_job_duration_seconds_sum",
       {"status", "gpu_type"},
       "duration_sum",
       1e-6,
       1e-3 * observations("duration_count")},
      {"queueing observed", "modal_job_queue_seconds_count", {"gpu_type"}, "queue_count", 0},
      {"GPUs in use per Modal environment",
       "modal_environment_concurrent_gpus",
       {"environment"},
       "environment_gpus",
       0},
      {"spend limit reached per Modal environment",
       "modal_environment_spend_limit_reached",
       {"environment"},
       "environment_spend_limit_reached",
       0},
      {"queueing sums",
       "modal_job_queue_seconds_sum",
       {"gpu_type"},
       "queue_sum",
       1e-6,
       1.0 * observations("queue_count")},
  };
  // Bandwidth keys in the truth are "ns/name/direction"; others "ns/name".
  auto key_of = [](std::string k) {
    std::replace(k.begin(), k.end(), '|', '/');
    return k;
  };
  for (const auto& c : checks) {
    std::string diff;
    const bool converged = wait_until(
        [&] {
          std::map<std::string, double> got;
          for (const auto& [k, v] : vector_of(c.promql, c.labels)) got[key_of(k)] = v;
          json want = t[c.truth_key];
          if (c.truth_key == "jobs_total" || c.truth_key == "app_cost_daily") {
            want = json::object();
            for (const auto& [k, v] : t[c.truth_key].items()) want[key_of(k)] = v;
          }
          diff = compare(got, want, c.tolerance, c.absolute);
          return diff.empty();
        },
        std::chrono::seconds(30));
    EXPECT_TRUE(converged) << c.name << ": " << diff;
  }
  const auto restarts = vector_of("modal_operator_restarts_total", {});
  ASSERT_EQ(restarts.size(), 1u);
  EXPECT_EQ(restarts.begin()->second, t["operator_restarts"].get<double>());
  EXPECT_FALSE(t["jobs_total"].empty());
  EXPECT_FALSE(t["gpu_utilization"].empty());  // the scenario exercised every kind of value
  EXPECT_FALSE(t["cold_starts"].empty());
  EXPECT_FALSE(t["duration_count"].empty());
  EXPECT_FALSE(t["queue_count"].empty());
  EXPECT_FALSE(t["webhook"].empty());
}

TEST_F(EndToEnd, PrometheusHoldsTheSimulatorsTruth) {
  expect_prometheus_holds_truth();
}

// The deploy checks compare the metric names of rules and dashboard with a real scrape.
TEST_F(EndToEnd, WritesMetricsDumpForTheDeployChecks) {
  const auto metrics = http_get(exporter_port_, "/metrics");
  ASSERT_EQ(metrics.status, 200u);
  std::ofstream(MX_METRICS_DUMP) << metrics.body;
  for (const char* name :
       {"modal_function_backlog{", "modal_endpoint_ready_replicas{", "modal_app_running_tasks{",
        "modal_job_queue_seconds_bucket{", "modal_job_duration_seconds_bucket{",
        "modal_i6pn_jobs_total{", "modal_webhook_requests_total{", "modal_environment_info{",
        "modal_environment_concurrent_gpus_limit{", "modal_environment_concurrent_tasks_limit{",
        "modal_environment_cycle_budget_usd{", "modal_environment_metered_cost_usd{"}) {
    EXPECT_NE(metrics.body.find(name), std::string::npos) << name << " missing";
  }
}

// Modal environments (EnvironmentList, EnvironmentBillingSummary) reach Prometheus, and the
// simulator's "dev" environment, past its spend limit after the scenario, fires the critical
// alert of the shipped rules.
TEST_F(EndToEnd, EnvironmentSeriesAndTheSpendLimitAlert) {
  EXPECT_EQ(vector_of("modal_environment_info", {"environment", "default"}),
            (std::map<std::string, double>{{"dev|false", 1}, {"main|true", 1}}));
  EXPECT_EQ(vector_of("modal_environment_concurrent_gpus_limit", {"environment"}),
            (std::map<std::string, double>{{"main", 16}}))
      << "dev has no GPU limit: no series";
  const auto cost = vector_of("modal_environment_metered_cost_usd", {"environment", "category"});
  for (const char* key : {"main|all", "main|deployed", "dev|all", "dev|notebook"}) {
    EXPECT_TRUE(cost.count(key)) << key;
  }
  ASSERT_EQ(truth()["environment_spend_limit_reached"]["dev"], 1)
      << "the scenario did not take dev past its spend limit";
  std::map<std::string, double> firing;
  EXPECT_TRUE(wait_until(
      [&] {
        firing = vector_of(
            R"(ALERTS{alertname="ModalEnvironmentSpendLimitReached",alertstate="firing"})",
            {"environment", "severity"});
        return !firing.empty();
      },
      std::chrono::seconds(30)))
      << query("ALERTS").dump();
  EXPECT_EQ(firing, (std::map<std::string, double>{{"dev|critical", 1}}));
}

TEST_F(EndToEnd, EverySeedQueryReturnsData) {
  const YAML::Node seed = YAML::LoadFile(MX_SOURCE_DIR "/monitoring/seed-queries.yaml");
  int checked = 0;
  for (const char* section : {"queries", "alerts"}) {
    for (const auto& q : seed[section]) {
      const auto promql = q["query"].as<std::string>();
      json result;
      const bool has_data = wait_until(
          [&] {
            result = query(promql);
            return result.value("status", "") == "success" && !result["data"]["result"].empty();
          },
          std::chrono::seconds(20));
      EXPECT_TRUE(has_data) << promql << " -> " << result.dump();
      ++checked;
    }
  }
  EXPECT_GE(checked, 20);
}

// Watches that expire (410, then a re-list) while the world moves, then an exporter restart
// from its state file: no job is counted twice or lost, every value still equals the truth.
// (The world is paused while the exporter is down: what happens unseen cannot be known.)
TEST_F(EndToEnd, WatchExpiryAndExporterRestartKeepTheTruth) {
  sim_->control("resume");
  for (int i = 0; i < 3; ++i) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    sim_->control("expire-watches");
  }
  std::this_thread::sleep_for(std::chrono::seconds(2));
  sim_->control("pause");
  expect_prometheus_holds_truth();

  exporter_->signal(SIGTERM);
  ASSERT_EQ(exporter_->wait_exit(std::chrono::seconds(20)), 0);
  delete exporter_;
  exporter_ = nullptr;
  const double restarted_at =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  start_exporter("exporter-restarted.log");
  EXPECT_NE(read_file(dir_ + "/exporter-restarted.log").find("state restored"), std::string::npos)
      << read_file(dir_ + "/exporter-restarted.log");
  // Compare only once Prometheus holds what the restarted exporter serves after its sync.
  ASSERT_TRUE(wait_until([] { return http_get(exporter_port_, "/readyz").status == 200; }))
      << read_file(dir_ + "/exporter-restarted.log");
  const double ready_at =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  ASSERT_TRUE(wait_until([&] {
    const auto start = vector_of("process_start_time_seconds", {});
    const auto scraped = vector_of("timestamp(process_start_time_seconds)", {});
    // (the start time comes from /proc with about a second of precision; the first exporter
    // started a minute earlier)
    return start.size() == 1 && start.begin()->second >= restarted_at - 5 && scraped.size() == 1 &&
           scraped.begin()->second > ready_at + 1;
  }));
  expect_prometheus_holds_truth();
}

// Alert expressions of the shipped rules, by alert name.
std::map<std::string, std::string> alert_exprs() {
  std::map<std::string, std::string> out;
  const YAML::Node rules = YAML::LoadFile(MX_SOURCE_DIR "/monitoring/prometheus-rules.yaml");
  for (const auto& group : rules["groups"]) {
    for (const auto& rule : group["rules"]) {
      if (rule["alert"]) out[rule["alert"].as<std::string>()] = rule["expr"].as<std::string>();
    }
  }
  return out;
}

TEST_F(EndToEnd, SourceDownIsVisibleAndLastKnownMetricsStay) {
  const auto alerts = alert_exprs();
  ASSERT_TRUE(alerts.count("ModalExporterSourceDown"));
  for (const std::string source : {"kubernetes", "modal"}) {
    sim_->control(source + "-down");
    const std::string up = "modal_exporter_source_up{source=\"" + source + "\"}";
    EXPECT_TRUE(wait_until(
        [&] {
          return vector_of(up, {}) == std::map<std::string, double>{{"", 0}};
        },
        std::chrono::seconds(30)))
        << source << ": " << query(up).dump();
    const auto firing = vector_of(alerts.at("ModalExporterSourceDown"), {"source"});
    EXPECT_TRUE(firing.count(source)) << source << " not selected by ModalExporterSourceDown";
    const auto metrics = http_get(exporter_port_, "/metrics").body;
    EXPECT_NE(metrics.find("modal_jobs_total{"), std::string::npos);
    EXPECT_NE(metrics.find("modal_job_info{"), std::string::npos);
    EXPECT_EQ(http_get(exporter_port_, "/healthz").status, 200u);
    sim_->control(source + "-up");
    EXPECT_TRUE(wait_until(
        [&] {
          return vector_of(up, {}) == std::map<std::string, double>{{"", 1}};
        },
        std::chrono::seconds(30)))
        << source << " did not recover: " << query(up).dump();
  }
}

// A second exporter with a wrong Modal secret: Kubernetes metrics keep flowing, Modal is counted
// as an auth error, reported down, and /readyz names it.
TEST_F(EndToEnd, WrongModalCredentialsKeepKubernetesMetricsFlowing) {
  auto env = exporter_env_;
  for (auto& line : env) {
    if (line.rfind("MODAL_TOKEN_SECRET=", 0) == 0) line = "MODAL_TOKEN_SECRET=as-wrong-secret";
  }
  auto args = exporter_args_;
  // Its own state file: the two exporters must not share one.
  const auto state = std::find(args.begin(), args.end(), "--state.file");
  ASSERT_NE(state, args.end());
  *std::next(state) = dir_ + "/state-wrong-credentials.json";
  args.push_back("--web.listen-address=127.0.0.1:0");
  ChildProcess exporter(args, dir_ + "/exporter-wrong-credentials.log", env);
  const std::uint16_t port = testing::wait_listening(exporter);
  ASSERT_NE(port, 0) << exporter.output();
  std::string metrics;
  const std::regex unauthenticated(
      R"(modal_operator_errors_total\{error_type="grpc_unauthenticated",component="modal_api"\} [1-9])");
  EXPECT_TRUE(wait_until([&] {
    metrics = http_get(port, "/metrics").body;
    return metrics.find(R"(modal_exporter_source_up{source="kubernetes"} 1)") !=
               std::string::npos &&
           metrics.find("modal_jobs_total{") != std::string::npos &&
           std::regex_search(metrics, unauthenticated);
  })) << metrics;
  EXPECT_NE(metrics.find(R"(modal_exporter_source_up{source="modal"} 0)"), std::string::npos);
  const auto ready = http_get(port, "/readyz");
  EXPECT_EQ(ready.status, 503u);
  EXPECT_NE(ready.body.find("modal"), std::string::npos) << ready.body;
  EXPECT_EQ(ready.body.find("kubernetes"), std::string::npos) << ready.body;
  exporter.signal(SIGTERM);
  EXPECT_EQ(exporter.wait_exit(), 0);
}

// Credentials the exporter used all along (Modal token id and secret, the JWT Modal issued for
// them, the Kubernetes bearer token) appear in no log line and no metric.
TEST_F(EndToEnd, SecretsNeverReachLogsOrMetrics) {
  std::vector<std::string> secrets;
  for (const auto& line : exporter_env_) {
    for (const char* key : {"MODAL_TOKEN_ID=", "MODAL_TOKEN_SECRET="}) {
      if (line.rfind(key, 0) == 0) secrets.push_back(line.substr(std::strlen(key)));
    }
  }
  const auto kubeconfig = read_file(dir_ + "/kubeconfig");
  const std::regex token_line(R"re(token: "?([^"\n]+))re");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(kubeconfig, m, token_line)) << kubeconfig;
  secrets.push_back(m[1]);
  secrets.push_back(".fake-signature");  // the tail of every JWT the fake Modal server issues
  secrets.push_back("as-wrong-secret");  // the secret the server refused, in the test above
  ASSERT_EQ(secrets.size(), 5u);
  const std::map<std::string, std::string> places = {
      {"exporter.log", read_file(dir_ + "/exporter.log")},
      {"exporter-restarted.log", read_file(dir_ + "/exporter-restarted.log")},
      {"exporter-wrong-credentials.log", read_file(dir_ + "/exporter-wrong-credentials.log")},
      {"/metrics", http_get(exporter_port_, "/metrics").body}};
  for (const auto& [where, text] : places) {
    EXPECT_FALSE(text.empty()) << where;
    for (const auto& secret : secrets) {
      EXPECT_EQ(text.find(secret), std::string::npos) << "a credential appears in " << where;
    }
  }
}

}  // namespace
}  // namespace mx
