#include "app/application.h"

#include <boost/asio/post.hpp>
#include <csignal>

#include "common/free_heap.h"
#include "common/log.h"
#include "http/routes.h"
#include "sources/registry.h"

namespace mx {

using namespace std::chrono_literals;

namespace {
constexpr auto kPublishDelay = 100ms;  // coalesces bursts of model changes into one snapshot
// Coalesces what the pollers bring (Model::Urgency::soon) into at most about one snapshot a
// second: a Kubernetes change then rarely lands within kPublishDelay of a publish made for them.
constexpr auto kPolledPublishDelay = 1s;
// Until the Kubernetes source's first full LIST is in, and Modal's first answers about those
// jobs, publishes wait (at most this long from the start): a fleet of 10k jobs arrives in pages,
// and a snapshot per page, or one before Modal's answers, would render it again and again.
constexpr auto kInitialSyncHold = 10s;
constexpr auto kTickInterval = 5s;  // pending observations, cost refresh, state file, free heap
constexpr int kMaxDrainPolls = 200;
// Changed jobs rendered per hand-over to the publisher: bounds the lines in flight (~0.5 MB)
// when a whole fleet changes at once (start-up, a re-list).
constexpr std::size_t kJobsPerSlice = 500;  // x 50 ms: in-flight responses get 10 s to finish
}  // namespace

Application::Application(Config config, Flags flags)
    : signals_(io_, SIGINT, SIGTERM, SIGHUP),
      flags_(std::move(flags)),
      config_(std::move(config)),
      self_(current_build_info()),
      model_(config_),
      derivation_(families_),
      publish_timer_(io_),
      slice_timer_(io_),
      tick_timer_(io_),
      drain_timer_(io_) {
  if (!config_.state_file.empty()) model_.load_state(config_.state_file);
  model_.set_on_change([this](Model::Urgency urgency) { schedule_publish(urgency); });
  declare_sources();
  derivation_.update(model_);
  publisher_ =
      std::make_unique<Publisher>(families_.families(), config_.web.gzip_level, self_.registry());
  publisher_->submit(families_.take_changes(), config_.web.gzip_level);
  publisher_->flush();
}

// The HTTP thread stops first (its handlers read the publisher's snapshots), then the
// publisher's (it reads nothing of the application's but its batches).
Application::~Application() {
  join_http_thread();
  publisher_.reset();
}

void Application::join_http_thread() {
  if (!http_thread_.joinable()) return;
  http_io_.stop();
  http_thread_.join();
}

// Health series and readiness follow the enabled sources; their error counters start at 0.
void Application::declare_sources() {
  self_.set_enabled_sources(enabled_source_names(config_));
  declare_error_types(config_, model_);
}

int Application::run() {
  const auto build = current_build_info();
  log::info("Starting modal-exporter", {{"version", build.version}, {"revision", build.revision}});

  RouteContext routes;
  routes.telemetry_path = config_.web.telemetry_path;
  routes.version = build.version;
  routes.snapshot = [this] { return publisher_->current(); };
  routes.self_metrics = [this](ExpositionFormat f) { return self_.render(f); };
  routes.ready = [this](std::string& why) { return self_.ready(why); };
  server_ = std::make_unique<HttpServer>(http_io_, config_.web, make_exporter_handler(routes),
                                         self_.registry());
  server_->start();
  http_thread_ = std::thread([this] { http_io_.run(); });
  const auto endpoint = server_->local_endpoint();
  log::info("Metrics server listening",
            {{"address", endpoint.address().to_string() + ":" + std::to_string(endpoint.port())},
             {"telemetry_path", config_.web.telemetry_path}});
  std::string enabled;
  for (const auto& name : enabled_source_names(config_)) {
    enabled += (enabled.empty() ? "" : ",") + name;
  }
  log::info("Sources", {{"enabled", enabled.empty() ? "none" : enabled}});
  start_sources();
  schedule_tick();
  wait_for_signals();
  io_.run();
  join_http_thread();
  if (!config_.state_file.empty()) model_.save_state(config_.state_file);
  log::info("modal-exporter stopped");
  return 0;
}

void Application::wait_for_signals() {
  signals_.async_wait([this](const boost::system::error_code& ec, int signal) {
    if (ec) return;
    if (signal == SIGHUP) {
      reload();
      wait_for_signals();
      return;
    }
    log::info("Shutting down", {{"signal", signal == SIGTERM ? "SIGTERM" : "SIGINT"}});
    shutdown();
  });
}

void Application::start_sources() {
  // A source that cannot even be constructed (an unusable URL, say) is reported as failing;
  // the exporter keeps serving what the other sources know.
  for (const auto& entry : source_registry()) {
    if (!entry.enabled(config_)) continue;
    try {
      auto source = entry.make(io_, config_, model_, health_, self_);
      source->start();
      sources_.emplace_back(&entry, std::move(source));
    } catch (const std::exception& e) {
      log::error("source cannot start", {{"source", entry.name}, {"err", e.what()}});
      health_.source_failed(entry.name);
    }
  }
}

void Application::Health::source_succeeded(std::string_view source, double poll_seconds) {
  self_.source_succeeded(source, poll_seconds);
  model_.source_succeeded(source, poll_seconds);
}

void Application::Health::source_failed(std::string_view source) {
  self_.source_failed(source);
  model_.source_failed(source);
}

// Sources stop on the io_context thread; afterwards none of them calls the model again.
void Application::stop_sources() {
  for (auto& [entry, source] : sources_) source->stop();
  sources_.clear();
}

// Leading edge: an isolated change is published as soon as the handler that made it returns
// (a whole LIST page or Modal reply, not its first object); changes within kPublishDelay of the
// last publish are coalesced into the next one (kPolledPublishDelay for the pollers' changes).
// While the first Kubernetes LIST is still coming in, and then Modal's first answers about every
// job (tasks and billing), the publish waits for them (bounded by kInitialSyncHold): otherwise each
// job renders twice within seconds, and the second rendering sits beside the first until the next
// snapshot replaces it (at 10k jobs, a start-up peak ~11 MiB above what the exporter holds
// afterwards).
void Application::schedule_publish(Model::Urgency urgency) {
  if (stopping_) return;
  const auto now = std::chrono::steady_clock::now();
  const auto hold = urgency == Model::Urgency::now
                        ? std::chrono::steady_clock::duration(kPublishDelay)
                        : kPolledPublishDelay;
  auto due = std::max(now, last_publish_ + hold);
  if (awaiting_initial_sync()) due = std::max(due, started_ + kInitialSyncHold);
  if (publish_scheduled_ && publish_due_ <= due) return;
  publish_scheduled_ = true;
  publish_due_ = due;
  if (due <= now) {
    publish_timer_.cancel();  // a later publish that was waiting for the sync: this one covers it
    boost::asio::post(io_, [this] {
      if (!publish_scheduled_ || stopping_) return;
      publish_scheduled_ = false;
      publish();
    });
    return;
  }
  publish_timer_.expires_at(due);
  publish_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || !publish_scheduled_ || stopping_) return;
    publish_scheduled_ = false;
    publish();
  });
}

bool Application::awaiting_initial_sync() const {
  for (const auto& [entry, source] : sources_) {
    const std::string_view name = entry->name;
    if (name == "kubernetes" && model_.kubernetes_listing()) return true;
    if (name == "modal" && !model_.modal_settled()) return true;
  }
  return false;
}

// The derivation renders what changed on this thread (it reads the model); compressing and
// assembling the snapshot happen on the publisher's thread. Many changed jobs are handed over in
// slices of kJobsPerSlice, each posted after the publisher has taken the previous one (the
// sources run in between); the last slice builds the snapshot.
void Application::publish() {
  last_publish_ = std::chrono::steady_clock::now();
  if (slicing_) return;  // the running hand-over takes these changes too
  continue_publish();
}

void Application::continue_publish() {
  if (stopping_) return;
  if (slicing_ && publisher_->queued() > 0) {
    slice_timer_.expires_after(1ms);
    slice_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) continue_publish();
    });
    return;
  }
  const bool more = derivation_.update(model_, kJobsPerSlice);
  if (families_.has_changes() || (slicing_ && !more)) {
    // While slices come, each is written into the buffers of one the publisher is done with;
    // after the last, the family set keeps no slice-sized buffer.
    publisher_->submit(
        families_.take_changes(more ? publisher_->take_spare_batch() : ChangeBatch{}),
        config_.web.gzip_level, !more);
  }
  slicing_ = more;
  if (more) boost::asio::post(io_, [this] { continue_publish(); });
}

void Application::schedule_tick() {
  tick_timer_.expires_after(kTickInterval);
  tick_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopping_) return;
    model_.tick();
    if (!config_.state_file.empty() && model_.state_dirty()) {
      model_.save_state(config_.state_file);
    }
    release_free_heap();  // 0.2-0.9 ms at 10k jobs
    schedule_tick();
  });
}

void Application::reload() {
  // --web.config.file, independent of --config; on the server's thread, like all it does.
  if (server_) boost::asio::post(http_io_, [this] { server_->reload_web_config(); });
  if (!flags_.config_path) {
    log::warn("SIGHUP received but no --config file was given; nothing to reload");
    return;
  }
  Config next;
  try {
    next = resolve_config(flags_);
  } catch (const ConfigError& e) {
    log::error("Config reload failed; keeping the running config", {{"err", e.message}});
    return;
  }
  if (next.web.listen_address != config_.web.listen_address ||
      next.web.telemetry_path != config_.web.telemetry_path) {
    log::warn("web.listen_address and web.telemetry_path changes take effect after a restart");
    next.web.listen_address = config_.web.listen_address;
    next.web.telemetry_path = config_.web.telemetry_path;
  }
  log::configure(next.log.level, next.log.format);
  stop_sources();
  config_ = next;
  model_.reconfigure(config_);
  if (config_.kubernetes.enabled) model_.kubernetes_restarted();
  declare_sources();
  start_sources();
  log::info("Config reloaded", {{"file", *flags_.config_path}});
}

void Application::shutdown() {
  if (stopping_) return;
  stopping_ = true;
  signals_.cancel();
  stop_sources();
  publish_timer_.cancel();
  slice_timer_.cancel();
  tick_timer_.cancel();
  if (server_) boost::asio::post(http_io_, [this] { server_->stop(); });
  // Wait (bounded) for in-flight responses; then nothing is left and io_.run() returns.
  drain_timer_.expires_after(0ms);
  struct Drain {
    Application* app;
    void operator()(const boost::system::error_code&) const {
      if (!app->server_ || app->server_->active_connections() == 0 ||
          ++app->drain_polls_ > kMaxDrainPolls) {
        app->io_.stop();
        return;
      }
      app->drain_timer_.expires_after(50ms);
      app->drain_timer_.async_wait(*this);
    }
  };
  drain_timer_.async_wait(Drain{this});
}

}  // namespace mx
