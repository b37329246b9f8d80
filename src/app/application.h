// Wires the stages together: sources -> model -> derivation -> snapshot -> HTTP. The sources, the
// model and the derivation share one io_context and its thread; the publisher builds snapshots
// on a thread of its own, and the HTTP server serves them from a third, so that a scrape never
// waits behind a Modal answer of 10k tasks being compared or a slice of jobs being rendered.
// Owns signal handling (SIGHUP reload, SIGTERM/SIGINT drain) and the state file.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "config/config.h"
#include "exposition/publisher.h"
#include "exposition/snapshot_builder.h"
#include "http/server.h"
#include "metrics/derivation.h"
#include "metrics/self_metrics.h"
#include "model/model.h"

namespace mx {

class Source;
struct SourceEntry;

class Application {
 public:
  Application(Config config, Flags flags);
  ~Application();

  // Binds the listener (throws on failure), starts the sources and runs until SIGTERM/SIGINT.
  int run();

 private:
  void start_sources();
  void stop_sources();
  void schedule_publish(Model::Urgency urgency);
  void publish();
  void continue_publish();
  bool awaiting_initial_sync() const;
  void schedule_tick();
  void reload();
  void shutdown();
  void wait_for_signals();
  void declare_sources();
  void join_http_thread();

  // Where the sources report their health: the self metrics (health series, readiness) and the
  // model (whether the Kubernetes sync is in), each told directly.
  class Health : public SourceHealth {
   public:
    Health(SelfMetrics& self, Model& model) : self_(self), model_(model) {}
    void source_succeeded(std::string_view source, double poll_seconds) override;
    void source_failed(std::string_view source) override;

   private:
    SelfMetrics& self_;
    Model& model_;
  };

  boost::asio::io_context io_;
  boost::asio::signal_set signals_;
  Flags flags_;
  Config config_;
  SelfMetrics self_;
  Model model_;
  Health health_{self_, model_};
  FamilySet families_;
  Derivation derivation_;
  std::unique_ptr<Publisher> publisher_;  // builds snapshots on its own thread
  // The HTTP server's io_context and thread. What its handlers call across threads: the
  // publisher's current snapshot and the self metrics (both guarded by mutexes).
  boost::asio::io_context http_io_{1};
  std::thread http_thread_;
  std::unique_ptr<HttpServer> server_;
  // The running sources, in registry order.
  std::vector<std::pair<const SourceEntry*, std::unique_ptr<Source>>> sources_;
  boost::asio::steady_timer publish_timer_;
  boost::asio::steady_timer slice_timer_;
  bool slicing_ = false;  // a publish is handing over changed jobs in slices
  boost::asio::steady_timer tick_timer_;
  boost::asio::steady_timer drain_timer_;
  bool publish_scheduled_ = false;
  std::chrono::steady_clock::time_point publish_due_{};  // when the scheduled publish runs
  std::chrono::steady_clock::time_point last_publish_{};
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  bool stopping_ = false;
  int drain_polls_ = 0;
};

}  // namespace mx
