// End to end over TLS with basic auth: the simulator, the exporter with --web.config.file and a
// real Prometheus (Debian package) whose scrape job uses tls_config + basic_auth. That job gets
// up == 1 and the simulator's jobs; a second job with a wrong password gets up == 0 and nothing.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "common/base64.h"
#include "support/e2e_world.h"
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

class EndToEndTls : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = testing::make_scratch_dir("modal-e2e-tls");
    ASSERT_FALSE(dir_.empty());
    testing::TestPki pki(dir_ + "/pki");
    pki.make_ca("ca");
    pki.make_leaf("exporter", "ca", "IP:127.0.0.1,DNS:localhost", "serverAuth");
    ca_file_ = pki.path("ca.crt");

    sim_ = new testing::Simulator(MX_SIM_BINARY, dir_, 8, 11);
    ASSERT_NE(sim_->port(), 0) << sim_->log();

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
    exporter_port_ = testing::free_port();
    exporter_ = new ChildProcess(
        {MX_EXPORTER_BINARY, "--config", testing::write_fast_exporter_config(dir_), "--kubeconfig",
         sim_->kubeconfig(), "--web.config.file", dir_ + "/web-config.yml",
         "--web.listen-address=127.0.0.1:" + std::to_string(exporter_port_), "--log.level=debug"},
        dir_ + "/exporter.log", sim_->exporter_env());
    ASSERT_NE(testing::wait_listening(*exporter_), 0) << read_file(dir_ + "/exporter.log");

    const std::string target = "127.0.0.1:" + std::to_string(exporter_port_);
    std::ostringstream config;
    config << "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
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
    prometheus_ = new testing::Prometheus(MX_PROMETHEUS_BINARY, dir_, config.str());
    sim_->control("resume");
    std::this_thread::sleep_for(std::chrono::seconds(8));
    sim_->control("pause");
  }

  static void TearDownTestSuite() {
    testing::stop_all({prometheus_ ? &prometheus_->process() : nullptr, exporter_,
                       sim_ ? &sim_->process() : nullptr});
    delete prometheus_;
    delete exporter_;
    delete sim_;
    testing::remove_scratch_dir_unless_failed(dir_);
  }

  // Instant vector as {label values joined by '/' -> value}; empty on any error.
  static std::map<std::string, double> vector_of(const std::string& promql,
                                                 const std::vector<std::string>& labels) {
    return prometheus_->vector_of(promql, labels, "/");
  }

  static constexpr const char* kPassword = "correct horse battery";
  static inline std::string dir_, ca_file_;
  static inline testing::Simulator* sim_ = nullptr;
  static inline ChildProcess* exporter_ = nullptr;
  static inline testing::Prometheus* prometheus_ = nullptr;
  static inline std::uint16_t exporter_port_ = 0;
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
  const auto truth = sim_->truth();
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
