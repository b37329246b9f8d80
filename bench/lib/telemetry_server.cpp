#include "telemetry_server.h"

#include <algorithm>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cmath>
#include <cstdio>
#include <functional>
#include <mutex>
#include <thread>
#include <unordered_map>

namespace mx::bench {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

namespace {

struct Endpoint {
  std::string gpu_type;
  int gpus = 0;
  std::time_t started_at = 0;
  double utilization = 0.5;  // 0-1, the job's level
  double rx_bytes_per_s = 0;
  double tx_bytes_per_s = 0;
};

// Per-GPU gauges of dcgm-exporter's default set (besides the utilization the exporter reads).
constexpr struct {
  const char* name;
  const char* help;
  double value;
} kDcgmGauges[] = {
    {"DCGM_FI_DEV_SM_CLOCK", "SM clock frequency (in MHz).", 1410},
    {"DCGM_FI_DEV_MEM_CLOCK", "Memory clock frequency (in MHz).", 1593},
    {"DCGM_FI_DEV_MEMORY_TEMP", "Memory temperature (in C).", 41},
    {"DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C).", 38},
    {"DCGM_FI_DEV_POWER_USAGE", "Power draw (in W).", 212.5},
    {"DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "Total number of PCIe retries.", 0},
    {"DCGM_FI_DEV_MEM_COPY_UTIL", "Memory utilization (in %).", 37},
    {"DCGM_FI_DEV_ENC_UTIL", "Encoder utilization (in %).", 0},
    {"DCGM_FI_DEV_DEC_UTIL", "Decoder utilization (in %).", 0},
    {"DCGM_FI_DEV_XID_ERRORS", "Value of the last XID error encountered.", 0},
    {"DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB).", 21504},
    {"DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB).", 59412},
    {"DCGM_FI_PROF_GR_ENGINE_ACTIVE", "Ratio of time the graphics engine is active.", 0.81},
    {"DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "Ratio of cycles the tensor pipe is active.", 0.43},
    {"DCGM_FI_PROF_DRAM_ACTIVE", "Ratio of cycles the device memory interface is active.", 0.29},
};

std::string page(const std::string& uid, const Endpoint& e, double now) {
  std::string out;
  out.reserve(4096 + 1024 * static_cast<std::size_t>(e.gpus));
  char line[512];
  auto gpu_labels = [&](int g) {
    char labels[256];
    std::snprintf(labels, sizeof labels,
                  "{gpu=\"%d\",UUID=\"GPU-%.8s-%04d\",device=\"nvidia%d\",modelName=\"NVIDIA %s\","
                  "Hostname=\"modal-worker\"}",
                  g, uid.c_str(), g, g, e.gpu_type.c_str());
    return std::string(labels);
  };
  // Utilization wanders a few points around the job's level, a new value every 10 s, as a
  // busy GPU's does: the exporter sees a change at most scrapes.
  const auto step = static_cast<long>(now / 10);
  out += "# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).\n";
  out += "# TYPE DCGM_FI_DEV_GPU_UTIL gauge\n";
  for (int g = 0; g < e.gpus; ++g) {
    const long wander = (step + g) % 7 - 3;
    const long percent = std::clamp(std::lround(e.utilization * 100) + wander, 0L, 100L);
    out += "DCGM_FI_DEV_GPU_UTIL" + gpu_labels(g) + " " + std::to_string(percent) + "\n";
  }
  for (const auto& gauge : kDcgmGauges) {
    out += std::string("# HELP ") + gauge.name + " " + gauge.help + "\n";
    out += std::string("# TYPE ") + gauge.name + " gauge\n";
    for (int g = 0; g < e.gpus; ++g) {
      std::snprintf(line, sizeof line, " %g\n", gauge.value);
      out += gauge.name + gpu_labels(g) + line;
    }
  }
  const double elapsed = std::max(0.0, now - static_cast<double>(e.started_at));
  const struct {
    const char* name;
    double rate;
  } counters[] = {{"node_network_receive_bytes_total", e.rx_bytes_per_s},
                  {"node_network_transmit_bytes_total", e.tx_bytes_per_s}};
  for (const auto& c : counters) {
    out += std::string("# TYPE ") + c.name + " counter\n";
    std::snprintf(line, sizeof line, "%s{device=\"eth0\"} %.0f\n%s{device=\"lo\"} %.0f\n", c.name,
                  std::floor(c.rate * elapsed), c.name, std::floor(2e5 * elapsed));
    out += line;
  }
  return out;
}

}  // namespace

struct TelemetryServer::Impl {
  asio::io_context io{1};
  // Keeps the io_context running while no job has a listener yet.
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  std::thread thread;
  mutable std::mutex mu;
  std::unordered_map<std::string, Endpoint> endpoints;
  std::unordered_map<std::string, std::shared_ptr<tcp::acceptor>> listeners;  // io thread only
  std::atomic<std::uint64_t> requests{0};

  http::response<http::string_body> answer(const http::request<http::string_body>& req) {
    http::response<http::string_body> res;
    res.version(req.version());
    res.keep_alive(req.keep_alive());
    const std::string_view target(req.target().data(), req.target().size());
    constexpr std::string_view kPrefix = "/telemetry/";
    std::string body;
    bool found = false;
    if (req.method() == http::verb::get && target.substr(0, kPrefix.size()) == kPrefix) {
      const std::string uid(target.substr(kPrefix.size()));
      std::lock_guard lock(mu);
      if (auto it = endpoints.find(uid); it != endpoints.end()) {
        body = page(uid, it->second, static_cast<double>(std::time(nullptr)));
        found = true;
      }
    }
    res.result(found ? http::status::ok : http::status::not_found);
    res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
    res.body() = found ? std::move(body) : "not found\n";
    res.prepare_payload();
    return res;
  }

  asio::awaitable<void> session(tcp::socket socket) {
    boost::beast::flat_buffer buffer;
    for (;;) {
      http::request<http::string_body> req;
      boost::system::error_code ec;
      co_await http::async_read(socket, buffer, req, asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      auto res = answer(req);
      ++requests;
      co_await http::async_write(socket, res, asio::redirect_error(asio::use_awaitable, ec));
      if (ec || !res.keep_alive()) co_return;
    }
  }

  asio::awaitable<void> accept(std::shared_ptr<tcp::acceptor> acceptor) {
    for (;;) {
      boost::system::error_code ec;
      tcp::socket socket =
          co_await acceptor->async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      asio::co_spawn(io, session(std::move(socket)), asio::detached);
    }
  }
};

TelemetryServer::TelemetryServer() : impl_(std::make_unique<Impl>()) {
  impl_->thread = std::thread([this] { impl_->io.run(); });
}

TelemetryServer::~TelemetryServer() {
  impl_->io.stop();
  impl_->thread.join();
}

std::string TelemetryServer::add(const std::string& uid, const std::string& gpu_type, int gpus,
                                 std::time_t started_at) {
  // Opened here for its port; accepting runs on the server's thread.
  auto acceptor = std::make_shared<tcp::acceptor>(
      impl_->io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  const auto port = acceptor->local_endpoint().port();
  asio::post(impl_->io, [impl = impl_.get(), uid, acceptor] {
    if (auto old = impl->listeners.find(uid); old != impl->listeners.end()) {
      boost::system::error_code ignored;
      old->second->close(ignored);
    }
    impl->listeners[uid] = acceptor;
    asio::co_spawn(impl->io, impl->accept(acceptor), asio::detached);
  });
  // Steady, job-specific values: the exporter's answers change only through the counters.
  const std::size_t h = std::hash<std::string>{}(uid);
  Endpoint e;
  e.gpu_type = gpu_type;
  e.gpus = std::max(0, gpus);  // a job without GPU serves the network counters only
  e.started_at = started_at;
  e.utilization = static_cast<double>(h % 101) / 100.0;
  e.rx_bytes_per_s = 1e5 * static_cast<double>(1 + (h >> 8) % 500);
  e.tx_bytes_per_s = 1e5 * static_cast<double>(1 + (h >> 16) % 200);
  {
    std::lock_guard lock(impl_->mu);
    impl_->endpoints[uid] = std::move(e);
  }
  return "http://127.0.0.1:" + std::to_string(port) + "/telemetry/" + uid;
}

void TelemetryServer::remove(const std::string& uid) {
  {
    std::lock_guard lock(impl_->mu);
    impl_->endpoints.erase(uid);
  }
  // The job's pod is gone: nothing listens at its address any more.
  asio::post(impl_->io, [impl = impl_.get(), uid] {
    if (auto it = impl->listeners.find(uid); it != impl->listeners.end()) {
      boost::system::error_code ignored;
      it->second->close(ignored);
      impl->listeners.erase(it);
    }
  });
}

std::uint64_t TelemetryServer::requests() const {
  return impl_->requests.load();
}

}  // namespace mx::bench
