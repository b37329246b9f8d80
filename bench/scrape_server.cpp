// bench_scrape_server: the exporter's real serving path (Model -> Derivation -> FamilySet ->
// Snapshot -> make_exporter_handler -> HttpServer) over a synthetic model of N jobs, for a load
// generator (wrk) to scrape. It also writes the plain-text body to a file so that nginx can
// serve the very same bytes as a static file: the baseline of bench/run-scrape-bench.sh.
//
//   bench_scrape_server [--jobs N] [--port P] [--dump PATH] [--seed S] [--gzip-level L]
//                       [--no-billing] [--churn-hz H]
//
// Prints "key=value" lines (series, bytes, timings) and then "listening=127.0.0.1:PORT" once
// scrapes are served. SIGINT/SIGTERM stop it.
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>

#include "common/log.h"
#include "exposition/snapshot_builder.h"
#include "http/routes.h"
#include "http/server.h"
#include "metrics/derivation.h"
#include "metrics/self_metrics.h"
#include "model/model.h"
#include "synthetic_model.h"

namespace {

struct Options {
  mx::bench::SyntheticOptions synthetic;
  int port = 0;
  std::string dump;
  int gzip_level = 6;
  double churn_hz = 0;
};

[[noreturn]] void usage(const std::string& error) {
  std::cerr << "bench_scrape_server: " << error << "\n"
            << "usage: bench_scrape_server [--jobs N] [--port P] [--dump PATH] [--seed S]\n"
            << "                           [--gzip-level 1-9] [--no-billing] [--churn-hz H]\n";
  std::exit(2);
}

long parse_number(std::string_view flag, const char* text, long lo, long hi) {
  char* end = nullptr;
  const long v = std::strtol(text, &end, 10);
  if (*text == '\0' || *end != '\0' || v < lo || v > hi) {
    usage(std::string(flag) + ": expected an integer in [" + std::to_string(lo) + ", " +
          std::to_string(hi) + "], got \"" + text + "\"");
  }
  return v;
}

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) usage(std::string(flag) + " needs a value");
      return argv[++i];
    };
    if (flag == "--jobs") {
      o.synthetic.jobs = static_cast<std::size_t>(parse_number(flag, value(), 0, 1'000'000));
    } else if (flag == "--port") {
      o.port = static_cast<int>(parse_number(flag, value(), 0, 65535));
    } else if (flag == "--dump") {
      o.dump = value();
    } else if (flag == "--seed") {
      o.synthetic.seed = static_cast<std::uint64_t>(parse_number(flag, value(), 0, 1L << 40));
    } else if (flag == "--gzip-level") {
      o.gzip_level = static_cast<int>(parse_number(flag, value(), 1, 9));
    } else if (flag == "--no-billing") {
      o.synthetic.billing = false;
    } else if (flag == "--churn-hz") {
      o.churn_hz = static_cast<double>(parse_number(flag, value(), 0, 1000));
    } else if (flag == "--help" || flag == "-h") {
      usage("help");
    } else {
      usage("unknown flag \"" + std::string(flag) + "\"");
    }
  }
  return o;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::size_t count_series(const std::string& text) {
  std::size_t n = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const auto eol = text.find('\n', pos);
    if (text[pos] != '#') ++n;
    if (eol == std::string::npos) break;
    pos = eol + 1;
  }
  return n;
}

// Publishes a new snapshot `hz` times a second with one job changed, as telemetry and Modal
// polls do in a live cluster: every gzip scrape after a publish pays one full deflate.
class Churn {
 public:
  Churn(boost::asio::io_context& io, mx::Model& model, mx::Derivation& derivation,
        mx::FamilySet& families, std::shared_ptr<const mx::Snapshot>& snapshot,
        std::vector<std::string> running, double hz, int gzip_level)
      : timer_(io),
        model_(model),
        derivation_(derivation),
        families_(families),
        snapshot_(snapshot),
        running_(std::move(running)),
        period_(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
            std::chrono::duration<double>(1.0 / hz))),
        gzip_level_(gzip_level) {}

  void start() {
    if (running_.empty()) return;
    timer_.expires_after(period_);
    timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      const auto& uid = running_[next_++ % running_.size()];
      model_.job_telemetry({uid, 0.5 + 0.001 * static_cast<double>(next_ % 400), 100.0, 50.0});
      derivation_.update(model_);
      snapshot_ = families_.publish(gzip_level_);
      start();
    });
  }
  void stop() { timer_.cancel(); }

 private:
  boost::asio::steady_timer timer_;
  mx::Model& model_;
  mx::Derivation& derivation_;
  mx::FamilySet& families_;
  std::shared_ptr<const mx::Snapshot>& snapshot_;
  std::vector<std::string> running_;
  std::chrono::steady_clock::duration period_;
  int gzip_level_;
  std::size_t next_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  const Options options = parse_options(argc, argv);
  mx::log::configure(mx::LogLevel::warn, mx::LogFormat::logfmt);

  mx::Config config = mx::bench::synthetic_config();
  config.web.listen_address = "127.0.0.1:" + std::to_string(options.port);
  config.web.gzip_level = options.gzip_level;

  mx::SelfMetrics self(mx::current_build_info());
  self.set_enabled_sources({"kubernetes", "modal", "telemetry"});
  for (const auto& source : self.enabled_sources()) self.source_succeeded(source, 0.1);
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  mx::Model model(config, [now] { return now; });

  auto t0 = std::chrono::steady_clock::now();
  const auto summary = mx::bench::populate(model, options.synthetic, now);
  const double populate_s = seconds_since(t0);

  mx::FamilySet families;
  mx::Derivation derivation(families);
  t0 = std::chrono::steady_clock::now();
  derivation.update(model);
  const double derive_s = seconds_since(t0);
  t0 = std::chrono::steady_clock::now();
  std::shared_ptr<const mx::Snapshot> snapshot = families.publish(config.web.gzip_level);
  const double publish_s = seconds_since(t0);

  const std::string& text = snapshot->body(mx::ExpositionFormat::text);
  const std::string tail = self.render(mx::ExpositionFormat::text);
  std::printf("jobs=%zu\napps=%zu\ntasks=%zu\nbilling_items=%zu\n", summary.uids.size(),
              summary.apps, summary.tasks, summary.billing_items);
  std::printf("series=%zu\nbytes=%zu\nself_metrics_bytes=%zu\n",
              count_series(text) + count_series(tail), text.size() + tail.size(), tail.size());
  for (const auto& [phase, secs] : summary.phase_seconds) {
    std::printf("populate_%s_seconds=%.3f\n", phase.c_str(), secs);
  }
  std::printf("populate_seconds=%.3f\nderive_seconds=%.3f\npublish_seconds=%.3f\n", populate_s,
              derive_s, publish_s);

  if (!options.dump.empty()) {
    // The snapshot plus one rendering of the self-metrics: what one plain scrape returns.
    std::ofstream out(options.dump, std::ios::binary | std::ios::trunc);
    out << text << tail;
    out.close();
    if (!out) {
      std::cerr << "bench_scrape_server: cannot write --dump file " << options.dump << "\n";
      return 1;
    }
    std::printf("dump=%s\n", options.dump.c_str());
  }

  boost::asio::io_context io;
  mx::RouteContext routes;
  routes.version = "bench";
  routes.snapshot = [&snapshot] { return snapshot; };
  routes.self_metrics = [&self](mx::ExpositionFormat f) { return self.render(f); };
  routes.ready = [&self](std::string& why) { return self.ready(why); };
  mx::HttpServer server(io, config.web, mx::make_exporter_handler(routes), self.registry());
  try {
    server.start();
  } catch (const std::exception& e) {
    std::cerr << "bench_scrape_server: cannot listen on " << config.web.listen_address << ": "
              << e.what() << "\n";
    return 1;
  }

  Churn churn(io, model, derivation, families, snapshot, summary.running, options.churn_hz,
              config.web.gzip_level);
  if (options.churn_hz > 0) churn.start();

  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code&, int) {
    churn.stop();
    server.stop();
    io.stop();
  });

  const auto endpoint = server.local_endpoint();
  std::printf("listening=%s:%u\n", endpoint.address().to_string().c_str(), endpoint.port());
  std::fflush(stdout);
  io.run();
  return 0;
}
