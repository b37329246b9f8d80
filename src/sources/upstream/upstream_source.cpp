#include "sources/upstream/upstream_source.h"

#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <chrono>

#include "common/log.h"
#include "net/http_client.h"
#include "sources/telemetry/scrape_health.h"

namespace mx {

namespace {

constexpr std::string_view kComponent = "upstream";  // error component and source name
// The scrape carries no credentials: a 401/403 means a wrong URL, http_4xx (docs/metrics.md).
constexpr net::AuthPolicy kAuthPolicy = net::AuthPolicy::anonymous;

}  // namespace

bool is_upstream_metric(std::string_view sample_name) {
  return sample_name == "modal_webhook_requests_total" ||
         sample_name == "modal_operator_errors_total";
}

std::vector<UpstreamSample> upstream_samples_from(const std::vector<ExpositionSample>& samples) {
  std::vector<UpstreamSample> out;
  for (const auto& s : samples) {
    if (!is_upstream_metric(s.name)) continue;
    UpstreamSample u;
    u.metric = s.name;
    for (const auto& l : s.labels) u.labels[l.name] = l.value;
    u.value = s.value;
    out.push_back(std::move(u));
  }
  return out;
}

namespace {

// One URL: one kept connection, as Prometheus keeps to a target.
net::ClientOptions client_options(std::shared_ptr<boost::asio::ssl::context> tls) {
  net::ClientOptions options({}, std::move(tls));
  options.max_idle_connections = 1;
  return options;
}

}  // namespace

class UpstreamSource::Impl : public std::enable_shared_from_this<Impl> {
 public:
  using Clock = std::chrono::steady_clock;

  Impl(boost::asio::io_context& io, UpstreamConfig config, BackoffConfig backoff,
       UpstreamSink& sink, SourceHealth& health, std::shared_ptr<boost::asio::ssl::context> tls)
      : config_(std::move(config)),
        sink_(sink),
        source_health_(health),
        health_(backoff),
        http_(net::HttpClient::create(io.get_executor(), client_options(std::move(tls)))),
        timer_(io) {
    config_.interval = std::max(config_.interval, Duration(10));
  }

  void start() {
    if (!config_.enabled) {
      log::info("upstream source disabled");
      return;
    }
    if (config_.url.empty()) {
      log::warn("upstream source enabled without upstream.url; not scraping");
      return;
    }
    if (running_) return;
    running_ = true;
    ++generation_;
    scrape();
  }

  void stop() {
    running_ = false;
    ++generation_;
    timer_.cancel();
    http_->cancel_all();
  }

 private:
  void scrape() {
    started_ = Clock::now();
    net::FetchRequest request;
    request.url = config_.url;
    request.timeout = config_.timeout;
    request.max_body_bytes = config_.max_body_bytes;
    http_->fetch(request, [weak = weak_from_this(), generation = generation_](net::FetchResult r) {
      auto self = weak.lock();
      if (!self || !self->running_ || self->generation_ != generation) return;
      self->on_scraped(std::move(r));
    });
  }

  void on_scraped(net::FetchResult result) {
    if (!result.ok()) {
      failed(net::error_type(result.error, kAuthPolicy), result.error.message);
    } else {
      ExpositionParseOptions options;
      options.format = exposition_format_for_content_type(result.content_type);
      options.keep = is_upstream_metric;
      options.max_errors = 1;
      const auto parsed = parse_exposition(result.body, options);
      if (parsed.error_count > 0) {
        // The set replaces the previous one; a malformed line might have been one of the
        // counters, and publishing a set without it would look like a counter reset.
        failed("parse", std::to_string(parsed.error_count) + " malformed line(s), first at line " +
                            std::to_string(parsed.errors[0].line) + ": " + parsed.errors[0].reason);
      } else {
        sink_.upstream_samples(upstream_samples_from(parsed.samples));
        source_health_.source_succeeded(
            kComponent, std::chrono::duration<double>(Clock::now() - started_).count());
        if (health_.succeed()) {
          log::info("upstream scrape recovered", {{"url", net::redact_url(config_.url)}});
        }
      }
    }
    auto next = started_ + config_.interval;
    next = std::max(next, health_.next_attempt());
    timer_.expires_at(next);
    timer_.async_wait(
        [weak = weak_from_this(), generation = generation_](boost::system::error_code ec) {
          auto self = weak.lock();
          if (ec || !self || !self->running_ || self->generation_ != generation) return;
          self->scrape();
        });
  }

  void failed(std::string_view type, const std::string& detail) {
    sink_.count_error(kComponent, type);
    source_health_.source_failed(kComponent);
    if (health_.fail(type, Clock::now())) {
      log::warn("upstream scrape failed",
                {{"url", net::redact_url(config_.url)}, {"error_type", type}, {"detail", detail}});
    }
  }

  UpstreamConfig config_;
  UpstreamSink& sink_;
  SourceHealth& source_health_;
  ScrapeHealth health_;
  std::shared_ptr<net::HttpClient> http_;
  boost::asio::steady_timer timer_;
  bool running_ = false;
  std::uint64_t generation_ = 0;
  Clock::time_point started_{};
};

UpstreamSource::UpstreamSource(boost::asio::io_context& io, UpstreamConfig config,
                               BackoffConfig backoff, UpstreamSink& sink, SourceHealth& health,
                               std::shared_ptr<boost::asio::ssl::context> tls)
    : impl_(std::make_shared<Impl>(io, std::move(config), backoff, sink, health, std::move(tls))) {}

UpstreamSource::~UpstreamSource() {
  impl_->stop();
}

void UpstreamSource::start() {
  impl_->start();
}
void UpstreamSource::stop() {
  impl_->stop();
}

}  // namespace mx
