// End to end over TLS with basic auth: the simulator, the exporter with --web.config.file and a
// real Prometheus (Debian package) whose scrape job uses tls_config + basic_auth. That job gets
// up == 1 and the simulator's jobs; a second job with a wrong password gets up == 0 and nothing.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/base64.h"
#include "support/http_client.h"
#include "support/process.h"
#include "support/tls.h"

namespace mx {
namespace {

using nlohmann::json;
using testing::ChildProcess;
using testing::http_get;
using testing::read_file;
using testing::wait_until;

std::uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::string url_encode(const std::string& s) {
  std::string out;
  char buf[4];
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

class EndToEndTls : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/modal-e2e-tls.XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    testing::TestPki pki(dir_ + "/pki");
    pki.make_ca("ca");
    pki.make_leaf("exporter", "ca", "IP:127.0.0.1,DNS:localhost", "serverAuth");
    ca_file_ = pki.path("ca.crt");

    sim_ = new ChildProcess({MX_SIM_BINARY, "--dir", dir_, "--jobs", "8", "--tick-ms", "200",
                             "--seed", "11", "--paused"},
                            dir_ + "/sim.log");
    ASSERT_TRUE(wait_until([] { return !read_file(dir_ + "/sim.json").empty(); }))
        << read_file(dir_ + "/sim.log");
    const auto info = json::parse(read_file(dir_ + "/sim.json"));
    sim_port_ = info["http_port"].get<std::uint16_t>();
    std::vector<std::string> env;
    std::ifstream modal_env(dir_ + "/modal.env");
    for (std::string line; std::getline(modal_env, line);) env.push_back(line);

    // The README's example, with the hash made the way README says (htpasswd -B).
    std::ofstream(dir_ + "/web-config.yml") << "tls_server_config:\n"
                                               "  cert_file: pki/exporter.crt\n"
                                               "  key_file: pki/exporter.key\n"
                                               "http_server_config:\n"
                                               "  headers:\n"
                                               "    Strict-Transport-Security: max-age=31536000\n"
                                               "basic_auth_users:\n"
                                               "  prometheus: "
                                            << testing::bcrypt_hash(kPassword, 10) << "\n";
    std::ofstream(dir_ + "/exporter.yaml") << R"(
backoff: {initial: 200ms, max: 2s}
sources:
  kubernetes: {operator_pod_interval: 1s}
  modal: {apps_interval: 1s, tasks_interval: 1s, stats_interval: 1s, billing_interval: 2s,
          rates_interval: 2s, call_timeout: 3s}
  telemetry: {interval: 1s, timeout: 2s}
)";
    exporter_port_ = free_port();
    exporter_ = new ChildProcess(
        {MX_EXPORTER_BINARY, "--config", dir_ + "/exporter.yaml", "--kubeconfig",
         info["kubeconfig"].get<std::string>(), "--web.config.file", dir_ + "/web-config.yml",
         "--web.listen-address=127.0.0.1:" + std::to_string(exporter_port_), "--log.level=debug"},
        dir_ + "/exporter.log", env);
    ASSERT_TRUE(wait_until([] {
      return read_file(dir_ + "/exporter.log").find("Metrics server listening") !=
             std::string::npos;
    })) << read_file(dir_ + "/exporter.log");

    prometheus_port_ = free_port();
    const std::string target = "127.0.0.1:" + std::to_string(exporter_port_);
    std::ofstream(dir_ + "/prometheus.yml")
        << "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
           "scrape_configs:\n"
           "  - job_name: tls-basic-auth\n"
           "    honor_labels: true\n"
           "    scheme: https\n"
           "    tls_config: {ca_file: '"
        << ca_file_ << "', server_name: localhost}\n"
        << "    basic_auth: {username: prometheus, password: '" << kPassword << "'}\n"
        << "    static_configs: [{targets: ['" << target << "']}]\n"
        << "  - job_name: wrong-password\n"
           "    scheme: https\n"
           "    tls_config: {ca_file: '"
        << ca_file_ << "', server_name: localhost}\n"
        << "    basic_auth: {username: prometheus, password: 'not-the-password'}\n"
        << "    static_configs: [{targets: ['" << target << "']}]\n";
    prometheus_ =
        new ChildProcess({MX_PROMETHEUS_BINARY, "--config.file=" + dir_ + "/prometheus.yml",
                          "--storage.tsdb.path=" + dir_ + "/tsdb",
                          "--web.listen-address=127.0.0.1:" + std::to_string(prometheus_port_)},
                         dir_ + "/prometheus.log");
    http_get(sim_port_, "/control/resume");
    std::this_thread::sleep_for(std::chrono::seconds(8));
    http_get(sim_port_, "/control/pause");
  }

  static void TearDownTestSuite() {
    for (auto* p : {prometheus_, exporter_, sim_}) {
      if (p) p->signal(SIGTERM);
    }
    for (auto* p : {prometheus_, exporter_, sim_}) {
      if (p) p->wait_exit(std::chrono::seconds(20));
      delete p;
    }
    if (::testing::UnitTest::GetInstance()->failed_test_count() == 0) {
      std::system(("rm -rf " + dir_).c_str());
    } else {
      std::fprintf(stderr, "e2e-tls: logs kept in %s\n", dir_.c_str());
    }
  }

  // Instant vector as {label values joined by '/' -> value}; empty on any error.
  static std::map<std::string, double> vector_of(const std::string& promql,
                                                 const std::vector<std::string>& labels) {
    std::map<std::string, double> out;
    try {
      const auto r = http_get(prometheus_port_, "/api/v1/query?query=" + url_encode(promql));
      if (r.status != 200) return out;
      const auto j = json::parse(r.body);
      for (const auto& s : j["data"]["result"]) {
        std::string key;
        for (const auto& l : labels) {
          key += (key.empty() ? "" : "/") + s["metric"].value(l, std::string());
        }
        out[key] = std::stod(s["value"][1].get<std::string>());
      }
    } catch (const std::exception&) {
    }
    return out;
  }

  static constexpr const char* kPassword = "correct horse battery";
  static inline std::string dir_, ca_file_;
  static inline ChildProcess* sim_ = nullptr;
  static inline ChildProcess* exporter_ = nullptr;
  static inline ChildProcess* prometheus_ = nullptr;
  static inline std::uint16_t sim_port_ = 0, exporter_port_ = 0, prometheus_port_ = 0;
};

TEST_F(EndToEndTls, StartUpLogSaysTlsAndAuthAreOn) {
  const auto log = read_file(dir_ + "/exporter.log");
  EXPECT_NE(log.find("TLS is enabled"), std::string::npos) << log;
  EXPECT_NE(log.find("Basic auth is enabled"), std::string::npos) << log;
  EXPECT_NE(log.find("serves HTTP/1.1"), std::string::npos) << log;
}

TEST_F(EndToEndTls, PrometheusScrapesOverTlsWithBasicAuth) {
  std::map<std::string, double> up;
  EXPECT_TRUE(wait_until(
      [&] {
        up = vector_of("up", {"job"});
        return up["tls-basic-auth"] == 1 && up.count("wrong-password") && up["wrong-password"] == 0;
      },
      std::chrono::seconds(60)))
      << "up: tls-basic-auth=" << up["tls-basic-auth"]
      << " wrong-password=" << (up.count("wrong-password") ? up["wrong-password"] : -1) << "\n"
      << read_file(dir_ + "/prometheus.log");
  // The same data as the simulator's truth, through the authenticated job.
  const auto truth = json::parse(http_get(sim_port_, "/truth").body);
  std::string diff;
  EXPECT_TRUE(wait_until(
      [&] {
        const auto got = vector_of("modal_jobs_total{job=\"tls-basic-auth\"}",
                                   {"status", "gpu_type", "replicas"});
        diff.clear();
        for (const auto& [k, v] : truth["jobs_total"].items()) {
          std::string key = k;
          std::replace(key.begin(), key.end(), '|', '/');
          auto it = got.find(key);
          if (it == got.end() || it->second != v.get<double>()) diff += key + " ";
        }
        return diff.empty() && got.size() == truth["jobs_total"].size();
      },
      std::chrono::seconds(30)))
      << "differs: " << diff;
  EXPECT_FALSE(truth["jobs_total"].empty());
  // The job with the wrong password got nothing but its synthetic series.
  EXPECT_TRUE(vector_of("modal_jobs_total{job=\"wrong-password\"}", {"status"}).empty());
  // The exporter counted the refused scrapes and never logged the credentials.
  testing::TlsClientOptions tls;
  tls.ca_file = ca_file_;
  const auto self = testing::https_get(
      exporter_port_, tls, "/metrics",
      {{"Authorization", "Basic " + base64::encode(std::string("prometheus:") + kPassword)}});
  ASSERT_EQ(self.status, 200u);
  EXPECT_EQ(self.headers.at("strict-transport-security"), "max-age=31536000");
  const std::string wrong = "modal_exporter_http_auth_failures_total{reason=\"wrong\"} ";
  const auto at = self.body.find(wrong);
  ASSERT_NE(at, std::string::npos) << self.body;
  EXPECT_GT(std::stod(self.body.substr(at + wrong.size())), 0);
  const auto log = read_file(dir_ + "/exporter.log");
  for (const std::string& secret : {std::string(kPassword), std::string("not-the-password"),
                                    base64::encode("prometheus:not-the-password"),
                                    base64::encode(std::string("prometheus:") + kPassword)}) {
    EXPECT_EQ(log.find(secret), std::string::npos) << "the log carries a credential";
  }
}

}  // namespace
}  // namespace mx
