// modal-sim: a simulated Kubernetes cluster running the Modal operator's objects, plus a
// simulated Modal control plane and per-job telemetry endpoints. It powers the demo
// (scripts/demo.sh), the end-to-end test and the benchmarks.
//
//   modal-sim --dir DIR [--jobs N] [--seed S] [--tick-ms MS] [--http-address HOST:PORT] [--paused]
//
// Writes DIR/kubeconfig (for the exporter's --kubeconfig), DIR/modal.env (MODAL_SERVER_URL,
// tokens, POD_NAME/POD_NAMESPACE) and DIR/sim.json (addresses). Its HTTP address serves
// /telemetry/<uid> (what jobs announce in modal-operator.io/telemetry-url), /truth (ground truth
// as JSON) and /control/{pause,resume,kubernetes-down,kubernetes-up,modal-down,modal-up,
// warning-events,operator-restart,expire-watches}.
#include <prometheus/registry.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <string>

#include "http/server.h"
#include "simulator.h"

namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

constexpr const char* kHelp =
    "usage: modal-sim --dir DIR [--jobs N] [--seed S] [--tick-ms MS] [--http-address HOST:PORT]\n"
    "                 [--paused]\n"
    "  --dir DIR            where to write kubeconfig, modal.env and sim.json (required)\n"
    "  --jobs N             active jobs to keep alive (default 40)\n"
    "  --seed S             random seed, for a repeatable scenario\n"
    "  --tick-ms MS         simulation step (default 500)\n"
    "  --http-address H:P   telemetry, /truth and /control (default 127.0.0.1:0)\n"
    "  --paused             start with the world frozen (GET /control/resume starts it)\n";

int usage(const char* why) {
  std::fprintf(stderr, "modal-sim: %s\n%s", why, kHelp);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  mx::sim::SimOptions options;
  std::string dir, http_address = "127.0.0.1:0";
  int tick_ms = 500;
  bool paused = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(arg + " needs a value");
      return argv[++i];
    };
    try {
      if (arg == "--help" || arg == "-h") {
        std::fputs(kHelp, stdout);
        return 0;
      } else if (arg == "--dir") {
        dir = value();
      } else if (arg == "--jobs") {
        options.target_jobs = std::stoi(value());
      } else if (arg == "--seed") {
        options.seed = std::stoull(value());
      } else if (arg == "--tick-ms") {
        tick_ms = std::stoi(value());
      } else if (arg == "--http-address") {
        http_address = value();
      } else if (arg == "--paused") {
        paused = true;
      } else {
        return usage(("unknown argument " + arg).c_str());
      }
    } catch (const std::exception& e) {
      return usage(e.what());
    }
  }
  if (dir.empty()) return usage("--dir is required");
  if (options.target_jobs < 0 || tick_ms <= 0)
    return usage("--jobs and --tick-ms must be positive");

  boost::asio::io_context io;
  mx::sim::Simulator sim(options);
  sim.set_paused(paused);

  mx::WebConfig web;
  web.listen_address = http_address;
  web.max_connections = 4096;
  // The control server's own connection counters are not served anywhere.
  prometheus::Registry unserved_metrics;
  mx::HttpServer server(
      io, web,
      [&](const mx::HttpRequest& req) {
        const std::string path = req.target.substr(0, req.target.find('?'));
        if (path.rfind("/telemetry/", 0) == 0) {
          auto body = sim.telemetry(path.substr(11), now_seconds());
          if (body.empty()) return mx::HttpResponse::text(404, "no such job\n");
          auto r = mx::HttpResponse::text(200, std::move(body));
          r.content_type = "text/plain; version=0.0.4; charset=utf-8";
          return r;
        }
        if (path == "/truth") {
          auto r = mx::HttpResponse::text(200, sim.truth(now_seconds()).dump(1) + "\n");
          r.content_type = "application/json";
          return r;
        }
        const std::map<std::string, std::function<void()>> controls = {
            {"/control/pause", [&] { sim.set_paused(true); }},
            {"/control/resume", [&] { sim.set_paused(false); }},
            {"/control/kubernetes-down", [&] { sim.set_kubernetes_down(true); }},
            {"/control/kubernetes-up", [&] { sim.set_kubernetes_down(false); }},
            {"/control/modal-down", [&] { sim.set_modal_down(true); }},
            {"/control/modal-up", [&] { sim.set_modal_down(false); }},
            {"/control/warning-events", [&] { sim.warn_every_job(); }},
            {"/control/operator-restart", [&] { sim.restart_operator(); }},
            // Every resourceVersion becomes too old and open watches end: clients must re-list.
            {"/control/expire-watches", [&] {
               sim.kube().compact();
               sim.kube().end_open_watches();
             }}};
        if (auto it = controls.find(path); it != controls.end()) {
          it->second();
          return mx::HttpResponse::text(200, "ok\n");
        }
        return mx::HttpResponse::text(404, "not found\n");
      },
      unserved_metrics);
  server.start();
  const auto port = server.local_endpoint().port();
  sim.start("http://127.0.0.1:" + std::to_string(port));

  const std::string kubeconfig = sim.kube().write_kubeconfig(dir);
  {
    std::ofstream env(dir + "/modal.env");
    for (const auto& [k, v] : sim.exporter_env()) env << k << "=" << v << "\n";
    std::ofstream info(dir + "/sim.json.tmp");
    info << "{\"kubeconfig\":\"" << kubeconfig << "\",\"kube_url\":\"" << sim.kube().url()
         << "\",\"modal_url\":\"" << sim.modal().address() << "\",\"http_port\":" << port << "}\n";
  }
  // Written last and renamed, so a reader that sees sim.json sees the other files too.
  std::rename((dir + "/sim.json.tmp").c_str(), (dir + "/sim.json").c_str());
  std::fprintf(
      stderr,
      "modal-sim: Kubernetes API %s, Modal %s, telemetry/control http://127.0.0.1:%u, %d jobs\n",
      sim.kube().url().c_str(), sim.modal().address().c_str(), port, options.target_jobs);

  boost::asio::steady_timer timer(io);
  std::function<void()> tick = [&] {
    sim.step(now_seconds());
    timer.expires_after(std::chrono::milliseconds(tick_ms));
    timer.async_wait([&](const boost::system::error_code& ec) {
      if (!ec) tick();
    });
  };
  tick();
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code&, int) {
    timer.cancel();
    server.stop();
    io.stop();
  });
  io.run();
  sim.kube().stop();
  return 0;
}
