#include "support/e2e_world.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>

#include "support/http_client.h"

namespace mx::testing {

std::uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  std::uint16_t port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
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

std::string make_scratch_dir(const std::string& prefix) {
  std::string tmpl = "/tmp/" + prefix + ".XXXXXX";
  return ::mkdtemp(tmpl.data()) ? tmpl : std::string();
}

void remove_scratch_dir_unless_failed(const std::string& dir) {
  if (dir.empty()) return;
  if (::testing::UnitTest::GetInstance()->failed_test_count() == 0) {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  } else {
    std::fprintf(stderr, "logs kept in %s\n", dir.c_str());
  }
}

void stop_all(const std::vector<ChildProcess*>& processes) {
  for (auto* p : processes) {
    if (p) p->signal(SIGTERM);
  }
  for (auto* p : processes) {
    if (p) p->wait_exit(std::chrono::seconds(20));
  }
}

Simulator::Simulator(const std::string& binary, const std::string& dir, int jobs, int seed,
                     int tick_ms) {
  process_ = std::make_unique<ChildProcess>(
      std::vector<std::string>{binary, "--dir", dir, "--jobs", std::to_string(jobs), "--tick-ms",
                               std::to_string(tick_ms), "--seed", std::to_string(seed), "--paused"},
      dir + "/sim.log");
  // sim.json is written last (renamed into place): once it is there, so are the other files.
  if (!wait_until([&] { return !read_file(dir + "/sim.json").empty(); })) return;
  const auto info = nlohmann::json::parse(read_file(dir + "/sim.json"));
  kubeconfig_ = info["kubeconfig"].get<std::string>();
  std::ifstream modal_env(dir + "/modal.env");
  for (std::string line; std::getline(modal_env, line);) env_.push_back(line);
  port_ = info["http_port"].get<std::uint16_t>();
}

void Simulator::control(const std::string& action) const {
  http_get(port_, "/control/" + action);
}

nlohmann::json Simulator::truth() const {
  return nlohmann::json::parse(http_get(port_, "/truth").body);
}

std::string write_fast_exporter_config(const std::string& dir) {
  const std::string path = dir + "/exporter.yaml";
  std::ofstream(path) << R"(
backoff: {initial: 200ms, max: 2s}
sources:
  kubernetes: {operator_pod_interval: 1s}
  modal: {apps_interval: 1s, tasks_interval: 1s, stats_interval: 1s, billing_interval: 2s,
          rates_interval: 2s, environments_interval: 1s, call_timeout: 3s}
  telemetry: {interval: 1s, timeout: 2s}
)";
  return path;
}

std::uint16_t wait_listening(const ChildProcess& exporter) {
  // The address is logged as the server bound it, so this also reads a port-0 listener's port.
  const std::regex listening(R"(msg="Metrics server listening" address=[^ ]*:(\d+))");
  std::uint16_t port = 0;
  wait_until([&] {
    std::smatch m;
    const auto log = exporter.output();
    if (!std::regex_search(log, m, listening)) return false;
    port = static_cast<std::uint16_t>(std::stoi(m[1]));
    return true;
  });
  return port;
}

Prometheus::Prometheus(const std::string& binary, const std::string& dir, const std::string& config)
    : port_(free_port()) {
  std::ofstream(dir + "/prometheus.yml") << config;
  process_ = std::make_unique<ChildProcess>(
      std::vector<std::string>{binary, "--config.file=" + dir + "/prometheus.yml",
                               "--storage.tsdb.path=" + dir + "/tsdb",
                               "--web.listen-address=127.0.0.1:" + std::to_string(port_)},
      dir + "/prometheus.log");
}

nlohmann::json Prometheus::query(const std::string& promql) const {
  try {
    const auto r = http_get(port_, "/api/v1/query?query=" + url_encode(promql));
    if (r.status != 200) return nlohmann::json{{"status", "error"}, {"body", r.body}};
    return nlohmann::json::parse(r.body);
  } catch (const std::exception& e) {
    // Not up yet (connection refused) or an unreadable answer: callers poll.
    return nlohmann::json{{"status", "error"}, {"body", e.what()}};
  }
}

std::map<std::string, double> Prometheus::vector_of(const std::string& promql,
                                                    const std::vector<std::string>& labels,
                                                    const std::string& separator) const {
  std::map<std::string, double> out;
  const auto j = query(promql);
  if (j.value("status", "") != "success") return out;
  for (const auto& s : j["data"]["result"]) {
    std::string key;
    for (const auto& l : labels) {
      key += (key.empty() ? "" : separator) + s["metric"].value(l, std::string());
    }
    out[key] = std::stod(s["value"][1].get<std::string>());
  }
  return out;
}

}  // namespace mx::testing
