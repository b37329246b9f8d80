// The modal-exporter binary as users run it: flags, config errors, signals, /metrics lint.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include "fake_kube_api.h"
#include "support/http_client.h"
#include "support/process.h"

namespace mx {
namespace {

using testing::ChildProcess;
using testing::run_command;
using testing::wait_until;

const std::string kBinary = MX_EXPORTER_BINARY;

std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "/" + std::to_string(::getpid()) + "-" + name;
}

// Starts the exporter on an ephemeral port and reads the port from its start-up log line.
class RunningExporter {
 public:
  explicit RunningExporter(std::vector<std::string> extra_args, std::string name = "exporter")
      : log_path_(temp_path(name + ".log")) {
    std::vector<std::string> argv = {kBinary, "--web.listen-address=127.0.0.1:0"};
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    process_ = std::make_unique<ChildProcess>(argv, log_path_);
    // logfmt: msg="Metrics server listening" address=...; json: ...listening","address":"...
    const std::regex listening(
        R"rx(Metrics server listening"?[ ,]"?address"?[=:]"?127\.0\.0\.1:(\d+))rx");
    wait_until([&] {
      std::smatch m;
      const auto log = process_->output();
      if (!std::regex_search(log, m, listening)) return false;
      port_ = static_cast<std::uint16_t>(std::stoi(m[1]));
      return true;
    });
  }
  std::uint16_t port() const { return port_; }
  ChildProcess& process() { return *process_; }

 private:
  std::string log_path_;
  std::unique_ptr<ChildProcess> process_;
  std::uint16_t port_ = 0;
};

TEST(ExporterProcess, VersionAndHelp) {
  std::string out;
  EXPECT_EQ(run_command(kBinary + " --version", out), 0);
  EXPECT_NE(out.find("modal-exporter 0."), std::string::npos) << out;
  EXPECT_EQ(run_command(kBinary + " --help", out), 0);
  EXPECT_NE(out.find("--web.listen-address"), std::string::npos);
}

TEST(ExporterProcess, BadConfigExitsWithCode2NamingKeyAndLine) {
  const auto path = temp_path("bad.yaml");
  std::ofstream(path)
      << "web:\n  listen_address: \":0\"\nsources:\n  modal:\n    apps_interval: -5s\n";
  std::string out;
  EXPECT_EQ(run_command(kBinary + " --config " + path, out), 2);
  EXPECT_NE(out.find("sources.modal.apps_interval"), std::string::npos) << out;
  EXPECT_NE(out.find("line 5"), std::string::npos) << out;
  std::ofstream(path) << "sources:\n  modal:\n    apps_interval: 300000000000d\n";
  EXPECT_EQ(run_command(kBinary + " --config " + path, out), 2);
  EXPECT_NE(out.find("key \"sources.modal.apps_interval\" (line 3): duration \"300000000000d\" is "
                     "too large"),
            std::string::npos)
      << out;
  EXPECT_EQ(run_command(kBinary + " --no-such-flag", out), 2);
  EXPECT_EQ(run_command(kBinary + " --config /nonexistent.yaml", out), 2);
  EXPECT_NE(out.find("/nonexistent.yaml"), std::string::npos);
}

TEST(ExporterProcess, ServesLintCleanMetricsWithoutClusterOrCredentials) {
  RunningExporter exporter({"--config", MX_SOURCE_DIR "/config/modal-exporter.yaml"}, "lint");
  ASSERT_NE(exporter.port(), 0) << exporter.process().output();
  const auto port = exporter.port();
  EXPECT_EQ(testing::http_get(port, "/healthz").status, 200u);
  auto ready = testing::http_get(port, "/readyz");
  EXPECT_EQ(ready.status, 503u);
  EXPECT_NE(ready.body.find("kubernetes"), std::string::npos) << ready.body;
  EXPECT_NE(ready.body.find("modal"), std::string::npos) << ready.body;

  const auto metrics = testing::http_get(port, "/metrics");
  ASSERT_EQ(metrics.status, 200u);
  EXPECT_NE(metrics.body.find("modal_exporter_build_info{"), std::string::npos);
  EXPECT_NE(metrics.body.find("modal_exporter_source_up{source=\"kubernetes\"} 0"),
            std::string::npos);
  EXPECT_NE(metrics.body.find("process_resident_memory_bytes "), std::string::npos);
  const auto dump = temp_path("metrics.txt");
  std::ofstream(dump) << metrics.body;
  std::string lint;
  const int rc = run_command("promtool check metrics < " + dump, lint);
  EXPECT_EQ(rc, 0) << "promtool (Debian package prometheus) must be installed: " << lint;
  EXPECT_EQ(lint, "") << lint;

  // Each failing source logs once per backoff step, not in a tight loop: over ~3 s the backoff
  // (first step about 1 s, doubling) allows a handful of lines, a loop would write thousands.
  std::this_thread::sleep_for(std::chrono::seconds(3));
  auto count = [&](const std::string& needle) {
    const auto log = exporter.process().output();
    int n = 0;
    for (auto at = log.find(needle); at != std::string::npos; at = log.find(needle, at + 1)) ++n;
    return n;
  };
  const int kube_failures = count("msg=\"cannot use the Kubernetes API\"");
  const int modal_failures = count("msg=\"modal poll failed\" poll=apps ");
  EXPECT_GE(kube_failures, 1);
  EXPECT_LE(kube_failures, 6) << exporter.process().output();
  EXPECT_GE(modal_failures, 1);
  EXPECT_LE(modal_failures, 6) << exporter.process().output();
  EXPECT_EQ(testing::http_get(port, "/healthz").status, 200u);  // and it stays up

  exporter.process().signal(SIGTERM);
  EXPECT_EQ(exporter.process().wait_exit(), 0);
  EXPECT_NE(exporter.process().output().find("modal-exporter stopped"), std::string::npos);
}

TEST(ExporterProcess, SighupAppliesValidConfigAndKeepsOldOnError) {
  const auto path = temp_path("reload.yaml");
  std::ofstream(path) << "sources:\n  modal:\n    enabled: false\n";
  RunningExporter exporter({"--config", path}, "reload");
  ASSERT_NE(exporter.port(), 0) << exporter.process().output();
  auto& p = exporter.process();

  std::ofstream(path) << "sources:\n  modal:\n    enabled: nope\n";
  p.signal(SIGHUP);
  EXPECT_TRUE(
      wait_until([&] { return p.output().find("Config reload failed") != std::string::npos; }));
  EXPECT_NE(p.output().find("sources.modal.enabled"), std::string::npos);
  auto metrics = testing::http_get(exporter.port(), "/metrics").body;
  EXPECT_EQ(metrics.find("source=\"modal\""), std::string::npos);  // old config still applies

  std::ofstream(path) << "sources:\n  modal:\n    enabled: true\n";
  p.signal(SIGHUP);
  EXPECT_TRUE(wait_until([&] { return p.output().find("Config reloaded") != std::string::npos; }));
  metrics = testing::http_get(exporter.port(), "/metrics").body;
  EXPECT_NE(metrics.find("modal_exporter_source_up{source=\"modal\"}"), std::string::npos);

  p.signal(SIGINT);
  EXPECT_EQ(p.wait_exit(), 0);
}

TEST(ExporterProcess, JsonLogs) {
  RunningExporter exporter(
      {"--log.format=json", "--config", MX_SOURCE_DIR "/config/modal-exporter.yaml"}, "json");
  ASSERT_NE(exporter.port(), 0) << exporter.process().output();
  EXPECT_NE(exporter.process().output().find("\"msg\":\"Metrics server listening\""),
            std::string::npos)
      << exporter.process().output();
  exporter.process().signal(SIGTERM);
  EXPECT_EQ(exporter.process().wait_exit(), 0);
}

// Modal enabled by a reload starts the source in the running process; without credentials its
// first poll fails, and says so in the configured log format.
TEST(ExporterProcess, AReloadEnablingModalStartsItsSource) {
  const auto path = temp_path("modal-reload.yaml");
  std::ofstream(path) << "sources:\n  modal:\n    enabled: false\n";
  RunningExporter exporter({"--log.format=json", "--config", path}, "modal-reload");
  ASSERT_NE(exporter.port(), 0) << exporter.process().output();
  auto& p = exporter.process();
  std::ofstream(path) << "sources:\n  modal:\n    enabled: true\n";
  p.signal(SIGHUP);
#ifdef MX_WITH_MODAL
  const std::string expected = "\"msg\":\"modal poll failed\"";
#else
  const std::string expected = "built without the Modal source";
#endif
  EXPECT_TRUE(wait_until([&] { return p.output().find(expected) != std::string::npos; }))
      << p.output();
  EXPECT_EQ(p.output().find("msg=\""), std::string::npos) << "a logfmt line: " << p.output();
  p.signal(SIGTERM);
  EXPECT_EQ(p.wait_exit(), 0);
}

// The binary alone, copied into an empty directory, with Modal enabled and no credentials: the
// Modal source is part of it (it starts and its poll fails for want of credentials), or, in a
// build without it, the source is down with the reason, and the rest is served either way.
TEST(ExporterProcess, TheBinaryAloneRunsWithModalEnabled) {
  const auto dir = temp_path("bin-alone");
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const auto copy = dir + "/modal-exporter";
  std::filesystem::copy_file(kBinary, copy, std::filesystem::copy_options::overwrite_existing);
  const auto path = dir + "/modal.yaml";
  std::ofstream(path) << "sources:\n  modal:\n    enabled: true\n";
  ChildProcess p({copy, "--web.listen-address=127.0.0.1:0", "--config", path}, dir + "/log");
#ifdef MX_WITH_MODAL
  const std::string expected = "modal poll failed";
#else
  const std::string expected = "built without the Modal source";
#endif
  ASSERT_TRUE(wait_until([&] {
    const auto out = p.output();
    return out.find(expected) != std::string::npos &&
           out.find("Metrics server listening") != std::string::npos;
  })) << p.output();
  const auto log = p.output();
#ifdef MX_WITH_MODAL
  EXPECT_EQ(log.find("source cannot start"), std::string::npos) << log;
#else
  EXPECT_NE(log.find("source cannot start"), std::string::npos) << log;
#endif
  const std::regex listening(R"rx(address=127\.0\.0\.1:(\d+))rx");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(log, m, listening)) << log;
  const auto metrics = testing::http_get(static_cast<std::uint16_t>(std::stoi(m[1])), "/metrics");
  EXPECT_EQ(metrics.status, 200u);
  EXPECT_NE(metrics.body.find("modal_exporter_source_up{source=\"modal\"} 0"), std::string::npos)
      << metrics.body;
  p.signal(SIGTERM);
  EXPECT_EQ(p.wait_exit(), 0);
}

double sample(const std::string& body, const std::string& series) {
  const auto at = body.find("\n" + series + " ");
  return at == std::string::npos ? -1 : std::stod(body.substr(at + series.size() + 2));
}

nlohmann::json modal_job(int i, const std::string& phase) {
  return {{"metadata", {{"name", "job-" + std::to_string(i)}, {"namespace", "ml"}}},
          {"spec", {{"gpu", "A100"}, {"replicas", 1}}},
          {"status", {{"phase", phase}, {"created_at", "2026-12-01T10:00:00"}}}};
}

// The exporter with its Kubernetes source only, against `kube` (started), with its files in a
// directory of its own; `name` also names its log.
std::unique_ptr<RunningExporter> kubernetes_only_exporter(testing::FakeKubeApi& kube,
                                                          const std::string& name) {
  const auto dir = temp_path(name);
  std::filesystem::create_directories(dir);
  const auto kubeconfig = kube.write_kubeconfig(dir);
  std::ofstream(dir + "/exporter.yaml")
      << "sources:\n  modal: {enabled: false}\n  telemetry: {enabled: false}\n";
  return std::make_unique<RunningExporter>(
      std::vector<std::string>{"--config", dir + "/exporter.yaml", "--kubeconfig", kubeconfig},
      name);
}

// A fleet that arrives in many LIST pages is published once, when the LIST is complete (not a
// snapshot per page), and a change after that is published on its own. The jobs are Pending:
// a running job's cost is refreshed by the 5 s tick, whose publishes would count here too when
// the test runs slowly (sanitizers on a loaded machine).
TEST(ExporterProcess, InitialListIsPublishedOnceThenChangesOneByOne) {
  testing::FakeKubeApi kube;
  kube.start();
  constexpr int kJobs = 1500;
  for (int i = 0; i < kJobs; ++i)
    kube.upsert("modal-operator.io/v1alpha1", "modaljobs", modal_job(i, "Pending"));
  kube.set_max_page_size(10);  // 150 pages
  const auto started = kubernetes_only_exporter(kube, "fleet");
  RunningExporter& exporter = *started;
  ASSERT_NE(exporter.port(), 0) << exporter.process().output();

  // Never a partial fleet: the first snapshot with any job in it has all of them. The builds are
  // the empty start-up snapshot and the fleet's (a snapshot per page would make ~150).
  std::string body;
  ASSERT_TRUE(wait_until([&] {
    body = testing::http_get(exporter.port(), "/metrics").body;
    return sample(body, "modal_jobs_active{gpu_type=\"A100\"}") >= 0;
  })) << body;
  EXPECT_EQ(sample(body, "modal_jobs_active{gpu_type=\"A100\"}"), kJobs) << body;
  const double builds = sample(body, "modal_exporter_snapshot_builds_total");
  EXPECT_GE(builds, 1) << body;
  EXPECT_LE(builds, 2) << body;

  kube.upsert("modal-operator.io/v1alpha1", "modaljobs", modal_job(7, "Succeeded"));
  ASSERT_TRUE(wait_until([&] {
    body = testing::http_get(exporter.port(), "/metrics").body;
    return sample(body, "modal_jobs_active{gpu_type=\"A100\"}") == kJobs - 1;
  })) << body;
  EXPECT_EQ(sample(body, "modal_exporter_snapshot_builds_total"), builds + 1) << body;
  EXPECT_GT(sample(body, "modal_exporter_snapshot_chunks"), 10) << body;
  exporter.process().signal(SIGTERM);
  EXPECT_EQ(exporter.process().wait_exit(), 0);
}

// SIGHUP restarts the Kubernetes source, whose informers start empty: a job deleted before the
// new source could list (here the API server is down across the reload) gets no DELETED event.
// It must still go at the new source's first sync, counted as cancelled.
TEST(ExporterProcess, AJobDeletedAcrossAReloadGoesAndCountsAsCancelled) {
  const std::string gv = "modal-operator.io/v1alpha1";
  testing::FakeKubeApi kube;
  kube.start();
  kube.upsert(gv, "modaljobs", modal_job(1, "Running"));
  kube.upsert(gv, "modaljobs", modal_job(2, "Running"));
  const auto started = kubernetes_only_exporter(kube, "reload-delete");
  RunningExporter& exporter = *started;
  ASSERT_NE(exporter.port(), 0) << exporter.process().output();
  const std::string active = "modal_jobs_active{gpu_type=\"A100\"}";
  const std::string cancelled =
      R"(modal_jobs_total{status="cancelled",gpu_type="A100",replicas="1"})";
  std::string body;
  ASSERT_TRUE(wait_until([&] {
    body = testing::http_get(exporter.port(), "/metrics").body;
    return sample(body, active) == 2;
  })) << body;

  kube.stop();
  exporter.process().signal(SIGHUP);
  ASSERT_TRUE(wait_until([&] {
    return exporter.process().output().find("Config reloaded") != std::string::npos;
  })) << exporter.process().output();
  kube.remove(gv, "modaljobs", "ml", "job-2");
  // The port can stay busy for a moment while the connections the stop cut are closing.
  ASSERT_TRUE(wait_until([&] {
    try {
      kube.start();
      return true;
    } catch (const std::runtime_error&) {
      return false;
    }
  }));

  EXPECT_TRUE(wait_until(
      [&] {
        body = testing::http_get(exporter.port(), "/metrics").body;
        return sample(body, active) == 1 && sample(body, cancelled) == 1;
      },
      std::chrono::seconds(90)))
      << body;
  EXPECT_EQ(body.find("job_name=\"job-2\""), std::string::npos) << body;
  EXPECT_NE(body.find("job_name=\"job-1\""), std::string::npos) << body;
  exporter.process().signal(SIGTERM);
  EXPECT_EQ(exporter.process().wait_exit(), 0);
}

}  // namespace
}  // namespace mx
