#include "sources/telemetry/telemetry_source.h"

#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/log.h"
#include "common/open_files.h"
#include "net/http_client.h"
#include "sources/telemetry/exposition_parser.h"
#include "sources/telemetry/scrape_health.h"
#include "sources/telemetry/telemetry_derive.h"

namespace mx {

namespace {

constexpr std::string_view kComponent = "telemetry";  // error component and source name
// The scrape carries no credentials: a 401/403 means a wrong URL, http_4xx (docs/metrics.md).
constexpr net::AuthPolicy kAuthPolicy = net::AuthPolicy::anonymous;

// How often the first round looks again while the Kubernetes source's first LIST is coming in
// (TelemetrySink::telemetry_targets_settling). Scraping the part listed so far would leave the
// rest a whole interval later: after each start most jobs' GPU series would be missing from
// /metrics for an interval, and their bandwidth (a rate of two scrapes) for two.
constexpr auto kSettlingCheck = std::chrono::milliseconds(250);

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double monotonic_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// A connection kept per endpoint, as Prometheus keeps one per target: each scrape of a pod's
// endpoint every few seconds would otherwise pay a connect. Bounded by the open-file limit's
// share for idle connections.
net::ClientOptions client_options(std::shared_ptr<boost::asio::ssl::context> tls) {
  net::ClientOptions options({}, std::move(tls));
  options.max_idle_connections = idle_connection_budget(open_file_limit());
  return options;
}

}  // namespace

class TelemetrySource::Impl : public std::enable_shared_from_this<Impl> {
 public:
  using Clock = std::chrono::steady_clock;

  Impl(boost::asio::io_context& io, TelemetryConfig config, BackoffConfig backoff,
       TelemetrySink& sink, SourceHealth& health, std::shared_ptr<boost::asio::ssl::context> tls)
      : config_(std::move(config)),
        backoff_(backoff),
        sink_(sink),
        source_health_(health),
        http_(net::HttpClient::create(io.get_executor(), client_options(std::move(tls)))),
        timer_(io) {
    // A zero interval would spin the io_context; config validation should prevent it anyway.
    config_.interval = std::max(config_.interval, Duration(10));
  }

  void start() {
    if (!config_.enabled) {
      log::info("telemetry source disabled");
      return;
    }
    if (running_) return;
    running_ = true;
    ++generation_;
    started_ = Clock::now();
    begin_round();
  }

  void stop() {
    running_ = false;
    ++generation_;  // whatever is still queued belongs to an old round
    timer_.cancel();
    http_->cancel_all();
  }

 private:
  struct Target {
    Target(std::string u, const BackoffConfig& backoff) : url(std::move(u)), health(backoff) {}
    std::string url;
    ScrapeHealth health;
    std::optional<NetworkCounters> previous;  // the last scrape's byte counters
  };

  void begin_round() {
    // Bounded by one interval: past it, the round takes what is listed so far, as any round
    // would, and the rest come with the next one.
    if (sink_.telemetry_targets_settling() && Clock::now() < started_ + config_.interval) {
      begin_round_at(Clock::now() + kSettlingCheck);
      return;
    }
    round_start_ = Clock::now();
    round_ok_ = true;
    update_targets(sink_.telemetry_targets());
    queue_.clear();
    next_index_ = 0;
    in_flight_ = 0;
    for (auto& [uid, target] : targets_) {
      if (target.health.due(round_start_)) {
        queue_.push_back(uid);
      } else {
        round_ok_ = false;  // still backing off after failures: not a successful round
      }
    }
    launch();
    if (queue_.empty()) finish_round();
  }

  void update_targets(const std::vector<TelemetryTarget>& wanted) {
    std::map<std::string, std::string> next;
    for (const auto& t : wanted) {
      if (!t.uid.empty()) next.emplace(t.uid, t.url);  // a duplicate uid: the first one wins
    }
    for (auto it = targets_.begin(); it != targets_.end();) {
      const auto w = next.find(it->first);
      if (w == next.end()) {
        sink_.forget_job_telemetry(it->first);
        it = targets_.erase(it);
        continue;
      }
      if (w->second != it->second.url) {
        // Counters from another endpoint say nothing about this one's rate.
        it->second = Target(w->second, backoff_);
      }
      ++it;
    }
    for (auto& [uid, url] : next) {
      if (!targets_.count(uid)) targets_.emplace(uid, Target(url, backoff_));
    }
  }

  void launch() {
    while (in_flight_ < kMaxConcurrentScrapes && next_index_ < queue_.size()) {
      const std::string& uid = queue_[next_index_++];
      const Target& target = targets_.at(uid);
      ++in_flight_;
      net::FetchRequest request;
      request.url = target.url;
      request.timeout = config_.timeout;
      request.max_body_bytes = config_.max_body_bytes;
      http_->fetch(request, [weak = weak_from_this(), generation = generation_, uid,
                             url = target.url, started = monotonic_seconds()](net::FetchResult r) {
        auto self = weak.lock();
        if (!self || !self->running_ || self->generation_ != generation) return;
        self->on_scraped(uid, url, started, std::move(r));
      });
    }
  }

  void on_scraped(const std::string& uid, const std::string& url, double started,
                  net::FetchResult result) {
    --in_flight_;
    const auto it = targets_.find(uid);
    if (it != targets_.end() && it->second.url == url) {
      if (!handle(uid, it->second, started, std::move(result))) round_ok_ = false;
    }
    launch();
    if (in_flight_ == 0 && next_index_ >= queue_.size()) finish_round();
  }

  // Returns whether the target counts as scraped successfully this round.
  bool handle(const std::string& uid, Target& target, double started, net::FetchResult result) {
    if (!result.ok()) {
      failed(uid, target, net::error_type(result.error, kAuthPolicy), result.error.message);
      return false;
    }
    ExpositionParseOptions options;
    options.format = exposition_format_for_content_type(result.content_type);
    options.keep = is_telemetry_metric;
    options.max_errors = 1;
    const auto parsed = parse_exposition(result.body, options);
    const std::string first_error =
        parsed.errors.empty()
            ? std::string()
            : "line " + std::to_string(parsed.errors[0].line) + ": " + parsed.errors[0].reason;
    if (parsed.error_count > 0 && parsed.sample_lines == 0) {
      // Nothing usable at all (an HTML page, a wrong port): the scrape failed.
      failed(uid, target, "parse", "not a Prometheus exposition: " + first_error);
      return false;
    }

    JobTelemetry out;
    out.uid = uid;
    out.gpu_utilization = gpu_utilization_ratio(parsed.samples);
    auto counters = network_counters(parsed.samples, started);
    if (target.previous) {
      const auto bandwidth = network_bandwidth(*target.previous, counters);
      out.ingress_mbps = bandwidth.ingress_mbps;
      out.egress_mbps = bandwidth.egress_mbps;
    }
    // Same sample timestamps as last time (a caching exporter): keep the older baseline so the
    // next rate spans real time.
    if (!target.previous || elapsed_seconds(*target.previous, counters)) {
      target.previous = std::move(counters);
    }
    sink_.job_telemetry(std::move(out));

    if (parsed.error_count > 0) {
      // Partly malformed: the good lines were used, the bad ones are reported.
      sink_.count_error(kComponent, "parse");
      if (target.health.degraded("parse")) {
        log::warn("telemetry endpoint sends malformed lines; they are skipped",
                  {{"uid", uid},
                   {"url", net::redact_url(target.url)},
                   {"malformed_lines", parsed.error_count},
                   {"first_error", first_error}});
      }
    } else if (target.health.succeed()) {
      log::info("telemetry scrape recovered", {{"uid", uid}, {"url", net::redact_url(target.url)}});
    }
    return true;
  }

  void failed(const std::string& uid, Target& target, std::string_view type,
              const std::string& detail) {
    sink_.count_error(kComponent, type);
    // What was derived before is no longer current: its series go away until the next success.
    JobTelemetry none;
    none.uid = uid;
    sink_.job_telemetry(std::move(none));
    if (target.health.fail(type, Clock::now())) {
      log::warn("telemetry scrape failed", {{"uid", uid},
                                            {"url", net::redact_url(target.url)},
                                            {"error_type", type},
                                            {"detail", detail}});
    }
  }

  void finish_round() {
    if (round_ok_) {
      source_health_.source_succeeded(kComponent, seconds_since(round_start_));
    } else {
      source_health_.source_failed(kComponent);
    }
    begin_round_at(round_start_ + config_.interval);
  }

  void begin_round_at(Clock::time_point at) {
    timer_.expires_at(at);
    timer_.async_wait(
        [weak = weak_from_this(), generation = generation_](boost::system::error_code ec) {
          auto self = weak.lock();
          if (ec || !self || !self->running_ || self->generation_ != generation) return;
          self->begin_round();
        });
  }

  TelemetryConfig config_;
  BackoffConfig backoff_;
  TelemetrySink& sink_;
  SourceHealth& source_health_;
  std::shared_ptr<net::HttpClient> http_;
  boost::asio::steady_timer timer_;
  bool running_ = false;
  std::uint64_t generation_ = 0;

  std::map<std::string, Target> targets_;  // by job UID
  Clock::time_point started_{};
  Clock::time_point round_start_{};
  bool round_ok_ = true;
  std::vector<std::string> queue_;  // UIDs to scrape this round
  std::size_t next_index_ = 0;
  std::size_t in_flight_ = 0;
};

TelemetrySource::TelemetrySource(boost::asio::io_context& io, TelemetryConfig config,
                                 BackoffConfig backoff, TelemetrySink& sink, SourceHealth& health,
                                 std::shared_ptr<boost::asio::ssl::context> tls)
    : impl_(std::make_shared<Impl>(io, std::move(config), backoff, sink, health, std::move(tls))) {}

TelemetrySource::~TelemetrySource() {
  impl_->stop();
}

void TelemetrySource::start() {
  impl_->start();
}
void TelemetrySource::stop() {
  impl_->stop();
}

}  // namespace mx
