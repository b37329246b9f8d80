// Over ~450 lines on purpose: the gRPC plumbing (auth, failover, cancellation, rounds, budget)
// shares one Impl's state and callbacks; what can stand alone already does (convert.cpp,
// pacing.cpp, modal_util.cpp, decimal.cpp). See modal_source.h for the behaviour.
#include "sources/modal/modal_source.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <ctime>
#include <deque>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/backoff.h"
#include "common/log.h"
#include "modal_api.grpc.pb.h"
#include "sources/modal/call_thread.h"
#include "sources/modal/convert.h"
#include "sources/modal/modal_util.h"
#include "sources/modal/pacing.h"

#ifndef MX_VERSION
#define MX_VERSION "dev"
#endif

namespace mx {
namespace {

namespace pb = ::modal::client;
using SteadyClock = std::chrono::steady_clock;
using SystemClock = std::chrono::system_clock;
using Stub = pb::ModalClient::Stub;

constexpr std::string_view kComponent = "modal_api";
constexpr std::string_view kSource = "modal";
// Calls of one poller in flight at once: enough to cover hundreds of apps within an interval,
// few enough not to look like a flood to Modal's rate limiter.
constexpr int kMaxConcurrentCalls = 4;
// A billing stream longer than this is cut off (and counted as "parse"): a bounded memory cost
// whatever the server sends.
constexpr std::size_t kMaxBillingItems = 200000;
constexpr std::size_t kMaxDetailChars = 200;

// Everything a gRPC callback thread may touch. stop() flips `stopped`, cancels what is in flight
// and waits until every callback has finished posting; posted handlers check `stopped` first, so
// they never reach into a stopped (possibly destroyed) source.
struct Shared {
  std::atomic<bool> stopped{false};
  std::mutex mutex;
  std::condition_variable idle;
  std::uint64_t next_id = 0;
  std::map<std::uint64_t, std::function<void()>> cancellers;

  std::uint64_t begin(std::function<void()> cancel) {
    std::lock_guard lock(mutex);
    const auto id = next_id++;
    cancellers.emplace(id, std::move(cancel));
    return id;
  }
  void end(std::uint64_t id) {
    std::function<void()> released;  // destroyed outside the lock
    std::lock_guard lock(mutex);
    auto it = cancellers.find(id);
    if (it != cancellers.end()) {
      released = std::move(it->second);
      cancellers.erase(it);
    }
    idle.notify_all();
  }
};

google::protobuf::Timestamp to_timestamp(std::int64_t unix_seconds) {
  google::protobuf::Timestamp ts;
  ts.set_seconds(unix_seconds);
  return ts;
}

std::string error_type(grpc::StatusCode code) {
  return "grpc_" + std::string(grpc_code_name(static_cast<int>(code)));
}

bool is_retryable(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::DEADLINE_EXCEEDED ||
         code == grpc::StatusCode::RESOURCE_EXHAUSTED;
}

// A server's RPCRetryPolicy.retry_after_secs is honoured in full (beyond backoff.max), up to a
// sanity bound.
Duration honour_hint(Duration own, std::optional<Duration> hint) {
  constexpr Duration kMaxHint = std::chrono::minutes(15);
  if (!hint) return own;
  return std::max(own, std::min(*hint, kMaxHint));
}

bool is_auth(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAUTHENTICATED || code == grpc::StatusCode::PERMISSION_DENIED;
}

// TLS trust: the system CA bundle when there is one (what curl and the other sources trust), else
// gRPC's own default roots.
grpc::SslCredentialsOptions system_roots() {
  grpc::SslCredentialsOptions options;
  for (const char* path :
       {"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"}) {
    std::ifstream in(path, std::ios::binary);
    if (!in) continue;
    std::ostringstream pem;
    pem << in.rdbuf();
    if (!pem.str().empty()) {
      options.pem_root_certs = pem.str();
      break;
    }
  }
  return options;
}

template <typename Req, typename Resp>
struct UnaryCall {
  grpc::ClientContext context;
  Req request;
  Resp response;
  grpc::Status status;
  std::string sent_jwt;
  std::unique_ptr<grpc::ClientAsyncResponseReader<Resp>> reader;  // used on the call thread
};

// Server-streaming read of WorkspaceBillingReport, on the call thread. It owns itself from
// start() until on_done has run.
class BillingReader final : public CallThread::Op {
 public:
  grpc::ClientContext context;
  pb::WorkspaceBillingReportRequest request;
  std::vector<pb::WorkspaceBillingReportItem> items;
  bool overflow = false;
  std::string sent_jwt;
  // Runs on the call thread once the stream is over; may move `items` out.
  std::function<void(const grpc::Status&, BillingReader&)> on_done;

  void start(Stub& stub, grpc::CompletionQueue& queue, std::shared_ptr<BillingReader> self) {
    self_ = std::move(self);
    stream_ = stub.PrepareAsyncWorkspaceBillingReport(&context, request, &queue);
    stream_->StartCall(this);
  }

  bool proceed(bool ok) override {
    if (finishing_) {
      auto keep = std::move(self_);  // the last step: release ourselves when it returns
      on_done(status_, *this);
      return false;
    }
    if (ok && reading_) {
      if (items.size() >= kMaxBillingItems) {
        overflow = true;
        context.TryCancel();
        ok = false;
      } else {
        items.push_back(std::move(item_));
        item_.Clear();
      }
    }
    if (ok) {
      reading_ = true;
      stream_->Read(&item_, this);
    } else {
      // End of stream, broken, or cut off: Finish brings the status.
      finishing_ = true;
      stream_->Finish(&status_, this);
    }
    return false;
  }

 private:
  std::unique_ptr<grpc::ClientAsyncReader<pb::WorkspaceBillingReportItem>> stream_;
  pb::WorkspaceBillingReportItem item_;
  grpc::Status status_;
  bool reading_ = false;
  bool finishing_ = false;
  std::shared_ptr<BillingReader> self_;
};

}  // namespace

class ModalSource::Impl {
 public:
  Impl(boost::asio::io_context& io, ModalConfig config, BackoffConfig backoff, ModalSink& sink,
       SourceHealth& health, CallObserver observer)
      : io_(io),
        config_(std::move(config)),
        backoff_config_(backoff),
        sink_(sink),
        health_(health),
        observer_(std::move(observer)),
        budget_(config_.stats_interval),
        budget_timer_(io),
        watch_timer_(io),
        budget_backoff_(backoff.initial, backoff.max),
        rng_(std::random_device{}()) {
    std::string error;
    auto targets = parse_modal_server_urls(config_.server_url, &error);
    if (!targets) throw ConfigError{error};
    if (config_.libmodal_version.empty()) {
      config_.libmodal_version = std::string("modal-exporter/") + MX_VERSION;
    }
    for (const auto* value : {&config_.client_version, &config_.libmodal_version}) {
      if (!valid_metadata_value(*value)) {
        throw ConfigError{
            "modal.client_version / libmodal_version hold characters that cannot "
            "be sent as metadata"};
      }
    }
    if (!(config_.max_calls_per_second > 0)) {
      throw ConfigError{"modal.max_calls_per_second must be positive"};
    }
    budget_period_ = std::chrono::duration_cast<SteadyClock::duration>(
        std::chrono::duration<double>(1.0 / config_.max_calls_per_second));
    grpc::ChannelArguments args;
    args.SetUserAgentPrefix("modal-exporter");
    args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);  // retries are paced by our own backoff
    args.SetMaxReceiveMessageSize(64 * 1024 * 1024);
    std::size_t begin = 0;
    for (const auto& target : *targets) {
      Endpoint e;
      const auto comma = config_.server_url.find(',', begin);
      e.url = config_.server_url.substr(begin, comma - begin);
      e.url.erase(0, e.url.find_first_not_of(' '));
      e.url.erase(e.url.find_last_not_of(' ') + 1);
      begin = comma == std::string::npos ? comma : comma + 1;
      auto credentials =
          target.tls ? grpc::SslCredentials(system_roots()) : grpc::InsecureChannelCredentials();
      e.channel = grpc::CreateCustomChannel(target.target, credentials, args);
      e.stub = pb::ModalClient::NewStub(e.channel);
      endpoints_.push_back(std::move(e));
    }

    make_poller(Kind::apps, "apps", config_.apps_interval);
    make_poller(Kind::tasks, "tasks", config_.tasks_interval);
    make_poller(Kind::billing, "billing", config_.billing_interval);
    make_poller(Kind::rates, "rates", config_.rates_interval);
    const auto shortest =
        std::min({config_.apps_interval, config_.tasks_interval, config_.stats_interval});
    watch_period_ =
        std::clamp<Duration>(shortest / 4, std::chrono::milliseconds(10), std::chrono::seconds(1));
  }

  ~Impl() { stop(); }

  void start() {
    if (started_ || shared_->stopped) return;
    started_ = true;
    work_.emplace(io_.get_executor());
    log::info("modal source starting", {{"server", endpoints_[active_].url},
                                        {"servers", endpoints_.size()},
                                        {"environment", config_.environment},
                                        {"max_calls_per_second", config_.max_calls_per_second}});
    for (auto& p : pollers_) schedule(*p, Duration{0});
    schedule_watch(Duration{0});
  }

  void stop() {
    if (shared_->stopped.exchange(true)) return;
    for (auto& p : pollers_) p->timer.cancel();
    budget_timer_.cancel();
    watch_timer_.cancel();
    jwt_waiters_.clear();
    // Cancelled on the call thread, after every call already handed to it has started; a start
    // queued later sees `stopped` and does not call.
    calls_.run([sh = shared_](grpc::CompletionQueue&) {
      std::vector<std::function<void()>> cancels;
      {
        std::lock_guard lock(sh->mutex);
        for (auto& [id, cancel] : sh->cancellers) cancels.push_back(cancel);
      }
      for (auto& cancel : cancels) cancel();
    });
    std::unique_lock lock(shared_->mutex);
    while (!shared_->cancellers.empty()) {
      if (!shared_->idle.wait_for(lock, std::chrono::seconds(5),
                                  [&] { return shared_->cancellers.empty(); })) {
        log::warn("modal source: still waiting for cancelled gRPC calls to finish",
                  {{"calls", shared_->cancellers.size()}});
      }
    }
    lock.unlock();
    work_.reset();
  }

 private:
  enum class Kind { apps, tasks, billing, rates };

  struct Endpoint {
    std::string url;
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<Stub> stub;
  };

  struct Failure {
    std::string method;
    grpc::StatusCode code = grpc::StatusCode::OK;
    std::string error_type;
    std::string detail;
  };

  struct Poller {
    Poller(boost::asio::io_context& io, Kind k, const char* n, Duration i, const BackoffConfig& b)
        : kind(k), name(n), interval(i), timer(io), backoff(b.initial, b.max) {}
    Kind kind;
    const char* name;
    Duration interval;
    boost::asio::steady_timer timer;
    Backoff backoff;
    bool running = false;
    bool last_failed = false;
    std::optional<SteadyClock::time_point> last_call;  // start of the last round that called
    std::set<std::string> asked;                       // app ids of that round
    // The current round.
    SteadyClock::time_point started;
    std::deque<std::function<void()>> queue;
    int in_flight = 0;
    bool abort = false;
    std::optional<Failure> failure;
    std::optional<Duration> server_hint;
    enum class Pace { interval, backoff, max } pace = Pace::interval;
    std::set<std::string> listed_tasks;  // tasks round: every task id listed
  };

  // --- rounds -------------------------------------------------------------------------------

  void make_poller(Kind kind, const char* name, Duration interval) {
    pollers_.push_back(std::make_unique<Poller>(io_, kind, name, interval, backoff_config_));
  }
  Poller& poller(Kind kind) {
    for (auto& p : pollers_) {
      if (p->kind == kind) return *p;
    }
    return *pollers_.front();
  }

  void schedule(Poller& p, Duration delay) {
    p.timer.expires_after(delay);
    p.timer.async_wait([this, sh = shared_, &p](const boost::system::error_code& ec) {
      if (sh->stopped || ec) return;
      run_round(p);
    });
  }

  void run_round(Poller& p) {
    p.started = SteadyClock::now();
    p.running = true;
    p.queue.clear();
    p.in_flight = 0;
    p.abort = false;
    p.failure.reset();
    p.server_hint.reset();
    p.pace = Poller::Pace::interval;
    p.listed_tasks.clear();

    switch (p.kind) {
      case Kind::apps:
        p.queue.push_back([this, &p] { app_list(p); });
        break;
      case Kind::tasks: {
        auto apps = unique(sink_.active_job_app_ids());
        if (apps.empty()) break;
        p.asked = {apps.begin(), apps.end()};
        if (per_app_tasks_) {
          for (const auto& app_id : apps) {
            p.queue.push_back([this, &p, app_id] { task_list(p, app_id, {app_id}); });
          }
        } else {
          p.queue.push_back([this, &p, apps] { task_list(p, "", apps); });
        }
        break;
      }
      case Kind::billing: {
        auto app_ids = unique(sink_.known_job_app_ids());
        if (app_ids.empty()) break;
        p.asked = {app_ids.begin(), app_ids.end()};
        p.queue.push_back([this, &p, app_ids] { billing_report(p, "d", app_ids); });
        p.queue.push_back([this, &p, app_ids] { billing_report(p, "h", app_ids); });
        break;
      }
      case Kind::rates:
        p.queue.push_back([this, &p] { billing_rates(p); });
        break;
    }
    if (p.queue.empty()) {  // nothing to ask about: no call, nothing to fail
      finish_round(p);
      return;
    }
    p.last_call = p.started;
    if (!refresh_credentials(p)) {
      finish_round(p);
      return;
    }
    pump(p);
  }

  static std::vector<std::string> unique(std::vector<std::string> ids) {
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    ids.erase(std::remove(ids.begin(), ids.end(), std::string()), ids.end());
    return ids;
  }

  // Starts queued calls up to the concurrency cap; ends the round when nothing is left.
  // Completions always arrive through io_context posts, so this never re-enters itself.
  void pump(Poller& p) {
    while (!p.abort && p.in_flight < kMaxConcurrentCalls && !p.queue.empty()) {
      auto launch = std::move(p.queue.front());
      p.queue.pop_front();
      ++p.in_flight;
      launch();
    }
    if (p.in_flight == 0 && (p.abort || p.queue.empty())) finish_round(p);
  }

  // Every launched call ends here exactly once. `counted`: the error was already counted (an
  // AuthTokenGet failure shared by several waiting calls counts once).
  void call_done(Poller& p, const char* method, const grpc::Status& status, bool counted) {
    --p.in_flight;
    if (!status.ok()) note_failure(p, method, status, counted);
    pump(p);
  }

  void note_failure(Poller& p, std::string_view method, const grpc::Status& status, bool counted) {
    const auto code = status.error_code();
    const auto type = error_type(code);
    if (!counted) sink_.count_error(kComponent, type);
    if (code == grpc::StatusCode::NOT_FOUND && method != "AppList") {
      log::debug("modal object not found", {{"method", method}});
      return;
    }
    if (code == grpc::StatusCode::UNIMPLEMENTED &&
        unimplemented_logged_.insert(std::string(method)).second) {
      log::warn("modal API does not implement this call; its metrics stay absent",
                {{"method", method}, {"error_type", type}});
    }
    fail_round(p, Failure{std::string(method), code, type, scrub(status.error_message())});
    if (const auto hint = modal_convert::retry_after_seconds(status)) {
      p.server_hint = std::chrono::duration_cast<Duration>(std::chrono::duration<double>(*hint));
    }
    if (is_auth(code)) {
      p.pace = Poller::Pace::max;
    } else if ((is_retryable(code) || code == grpc::StatusCode::UNIMPLEMENTED) &&
               p.pace != Poller::Pace::max) {
      p.pace = Poller::Pace::backoff;
    }
    if (is_auth(code) || is_retryable(code) || code == grpc::StatusCode::UNIMPLEMENTED || counted) {
      p.abort = true;
    }
  }

  void fail_round(Poller& p, Failure failure) {
    if (!p.failure) p.failure = std::move(failure);
  }

  void finish_round(Poller& p) {
    p.running = false;
    p.last_failed = p.failure.has_value();
    const double seconds = std::chrono::duration<double>(SteadyClock::now() - p.started).count();
    if (!p.failure) {
      p.backoff.reset();
      if (p.kind == Kind::apps) health_.source_succeeded(kSource, seconds);
      if (p.kind == Kind::tasks) forget_unlisted_tasks(p.listed_tasks);
      schedule(p, p.interval);
      return;
    }
    health_.source_failed(kSource);
    Duration delay = p.interval;
    switch (p.pace) {
      case Poller::Pace::interval:
        break;
      case Poller::Pace::backoff:
        delay = honour_hint(p.backoff.next(), p.server_hint);
        break;
      case Poller::Pace::max:
        p.backoff.next();
        delay = honour_hint(backoff_config_.max, p.server_hint);
        break;
    }
    const auto& f = *p.failure;
    log::warn("modal poll failed", {{"poll", p.name},
                                    {"method", f.method},
                                    {"error_type", f.error_type},
                                    {"detail", f.detail},
                                    {"attempt", p.backoff.attempt()},
                                    {"retry_in", format_duration(delay)}});
    schedule(p, delay);
  }

  // --- start-up and new jobs: early rounds, the budget's function list ----------------------

  void schedule_watch(Duration delay) {
    watch_timer_.expires_after(delay);
    watch_timer_.async_wait([this, sh = shared_](const boost::system::error_code& ec) {
      if (sh->stopped || ec) return;
      watch();
      schedule_watch(watch_period_);
    });
  }

  // A tasks or billing round runs early when the jobs bring app ids it has not asked about, it is
  // not running or backing off, and its last call is at least tasks_interval ago.
  void maybe_run_early(Poller& p, const std::vector<std::string>& ids) {
    if (p.running || p.last_failed) return;
    const auto now = SteadyClock::now();
    if (p.last_call && now - *p.last_call < config_.tasks_interval) return;
    bool grown = false;
    for (const auto& id : ids) grown = grown || !p.asked.contains(id);
    if (!grown) return;
    log::debug("modal round started early for new apps", {{"poll", p.name}});
    schedule(p, Duration{0});
  }

  void watch() {
    maybe_run_early(poller(Kind::tasks), unique(sink_.active_job_app_ids()));
    maybe_run_early(poller(Kind::billing), unique(sink_.known_job_app_ids()));
    budget_.set_functions(unique(sink_.job_function_ids()));
    budget_kick();
  }

  // --- the budget of per-object calls -------------------------------------------------------

  // (Re)arms the budget timer for the earliest moment a call may go out.
  void budget_kick(std::optional<SteadyClock::time_point> wake = std::nullopt) {
    auto at = std::max(budget_next_allowed_, budget_paused_until_);
    if (wake) at = std::max(at, *wake);
    if (budget_armed_ && budget_armed_at_ <= at) return;
    budget_armed_ = true;
    budget_armed_at_ = at;
    const auto generation = ++budget_generation_;
    budget_timer_.expires_at(at);
    budget_timer_.async_wait([this, sh = shared_, generation](const boost::system::error_code& ec) {
      if (sh->stopped || ec || generation != budget_generation_) return;
      budget_armed_ = false;
      budget_step();
    });
  }

  void budget_step() {
    const auto now = SteadyClock::now();
    if (now < budget_paused_until_ || now < budget_next_allowed_) {
      budget_kick();
      return;
    }
    // Credentials come from the fixed pollers' rounds; a completion re-kicks the budget.
    if (!creds_ || budget_in_flight_ >= kMaxConcurrentCalls) return;
    auto next = budget_.next(now);
    switch (next.kind) {
      case CallBudget::Kind::none:
        if (next.wake) budget_kick(*next.wake);
        return;
      case CallBudget::Kind::task_info:
        task_info(next.id);
        break;
      case CallBudget::Kind::function_stats:
        function_stats(next.id);
        break;
    }
    ++budget_in_flight_;
    budget_next_allowed_ = now + budget_period_;
    budget_kick();
  }

  void budget_done(const char* method, const grpc::Status& status, bool counted) {
    --budget_in_flight_;
    const auto code = status.error_code();
    if (status.ok()) {
      budget_backoff_.reset();
    } else {
      if (!counted) sink_.count_error(kComponent, error_type(code));
      if (code == grpc::StatusCode::NOT_FOUND) {
        log::debug("modal object not found", {{"method", method}});
      } else {
        std::optional<Duration> hint;
        if (const auto secs = modal_convert::retry_after_seconds(status)) {
          hint = std::chrono::duration_cast<Duration>(std::chrono::duration<double>(*secs));
        }
        if (code == grpc::StatusCode::UNIMPLEMENTED &&
            unimplemented_logged_.insert(method).second) {
          log::warn("modal API does not implement this call; its metrics stay absent",
                    {{"method", method}, {"error_type", error_type(code)}});
        }
        const bool slow_down = is_retryable(code) || is_auth(code) || hint || counted ||
                               code == grpc::StatusCode::UNIMPLEMENTED;
        if (slow_down) {
          const Duration delay =
              honour_hint(is_auth(code) ? backoff_config_.max : budget_backoff_.next(), hint);
          budget_paused_until_ = std::max(budget_paused_until_, SteadyClock::now() + delay);
          health_.source_failed(kSource);
          log::warn("modal call budget paused", {{"method", method},
                                                 {"error_type", error_type(code)},
                                                 {"detail", scrub(status.error_message())},
                                                 {"attempt", budget_backoff_.attempt()},
                                                 {"retry_in", format_duration(delay)}});
        } else {
          log::warn("modal call failed", {{"method", method},
                                          {"error_type", error_type(code)},
                                          {"detail", scrub(status.error_message())}});
        }
      }
    }
    budget_kick();
  }

  // Tasks no longer listed need no TaskGetInfo and no place in the seen set.
  void forget_unlisted_tasks(const std::set<std::string>& listed) {
    for (auto it = seen_tasks_.begin(); it != seen_tasks_.end();) {
      it = listed.contains(*it) ? std::next(it) : seen_tasks_.erase(it);
    }
    budget_.retain_tasks(listed);
  }

  // --- credentials and the JWT ---------------------------------------------------------------

  bool refresh_credentials(Poller& p) {
    std::string error;
    auto creds = load_modal_credentials(config_, &error);
    if (!creds) {
      sink_.count_error(kComponent, "auth");
      fail_round(p, Failure{"credentials", grpc::StatusCode::UNAUTHENTICATED, "auth", error});
      p.pace = Poller::Pace::backoff;
      return false;
    }
    if (!creds_ || !(*creds_ == *creds)) {
      // New or rotated credentials: a JWT minted for the old ones must not be reused.
      token_.clear();
      jwt_unsupported_ = false;
      creds_ = std::move(creds);
    }
    return true;
  }

  void add_metadata(grpc::ClientContext& ctx, bool with_jwt) {
    ctx.set_deadline(SystemClock::now() + config_.call_timeout);
    ctx.AddMetadata("x-modal-token-id", creds_->token_id);
    ctx.AddMetadata("x-modal-token-secret", creds_->token_secret);
    ctx.AddMetadata("x-modal-client-type", std::to_string(config_.client_type));
    ctx.AddMetadata("x-modal-client-version", config_.client_version);
    ctx.AddMetadata("x-modal-libmodal-version", config_.libmodal_version);
    if (with_jwt && !token_.token().empty()) ctx.AddMetadata("x-modal-auth-token", token_.token());
  }

  using AuthContinuation = std::function<void(const grpc::Status&, bool counted)>;

  // Runs `k` once a usable JWT is cached (or the server has none to give). A cached token that
  // is due for refresh is still used while one shared AuthTokenGet fetches the next one.
  void with_auth(AuthContinuation k) {
    const auto now = SystemClock::now();
    if (jwt_unsupported_ || !token_.should_refresh(now)) {
      k(grpc::Status::OK, false);
      return;
    }
    if (token_.usable(now)) {
      fetch_token();  // in the background
      k(grpc::Status::OK, false);
      return;
    }
    jwt_waiters_.push_back(std::move(k));
    fetch_token();
  }

  void fetch_token() {
    if (jwt_fetching_) return;
    jwt_fetching_ = true;
    auto call = std::make_shared<UnaryCall<pb::AuthTokenGetRequest, pb::AuthTokenGetResponse>>();
    add_metadata(call->context, /*with_jwt=*/false);
    start_call(
        call,
        [](Stub& s, grpc::ClientContext* c, const pb::AuthTokenGetRequest& r,
           grpc::CompletionQueue* q) { return s.PrepareAsyncAuthTokenGet(c, r, q); },
        [this, call](std::size_t endpoint) {
          observe("AuthTokenGet", call->status, endpoint);
          on_auth_token(call->status, call->response.token());
        });
  }

  void on_auth_token(const grpc::Status& status, const std::string& token) {
    jwt_fetching_ = false;
    const auto now = SystemClock::now();
    grpc::Status result = grpc::Status::OK;
    bool counted = false;
    const auto code = status.error_code();
    if (status.ok()) {
      if (token.empty() || !valid_metadata_value(token)) {
        // Nonsense from the server: go on with the token id/secret alone this time.
        sink_.count_error(kComponent, "parse");
        log::warn("modal AuthTokenGet returned an unusable token; calling without it");
        token_.clear();
        token_.refresh_failed(now);
        counted = true;
      } else {
        const auto exp = jwt_expiry(token);
        if (!exp) log::debug("modal auth token has no exp claim; assuming 20 minutes");
        token_.accept(token, exp, now, std::uniform_real_distribution<double>(0, 1)(rng_));
      }
    } else if (code == grpc::StatusCode::UNIMPLEMENTED) {
      jwt_unsupported_ = true;
      log::info("modal server does not implement AuthTokenGet; calling without x-modal-auth-token");
    } else if (is_auth(code)) {
      // The server refused the token id/secret themselves: a credentials error, whatever is
      // cached.
      token_.clear();
      sink_.count_error(kComponent, error_type(code));
      log::warn("modal refused the credentials (AuthTokenGet); check the token id and secret",
                {{"error_type", error_type(code)}});
      result = grpc::Status(code, "AuthTokenGet: credentials refused");
      counted = true;
    } else {
      sink_.count_error(kComponent, error_type(code));
      token_.refresh_failed(now);
      if (token_.usable(now)) {
        log::warn(
            "modal auth token refresh failed; using the cached token",
            {{"error_type", error_type(code)},
             {"retry_in",
              format_duration(std::chrono::duration_cast<Duration>(token_.next_backoff() / 2))}});
      } else {
        result = grpc::Status(code, "AuthTokenGet: " + status.error_message());
        counted = true;
      }
    }
    auto waiters = std::move(jwt_waiters_);
    jwt_waiters_.clear();
    for (auto& k : waiters) k(result, counted);
  }

  // Server text can echo what it was sent; keep our secrets (and overlong text) out of logs.
  std::string scrub(std::string text) const {
    auto redact = [&text](const std::string& secret) {
      if (secret.empty()) return;
      for (auto pos = text.find(secret); pos != std::string::npos; pos = text.find(secret, pos)) {
        text.replace(pos, secret.size(), "<redacted>");
        pos += 10;
      }
    };
    if (creds_) redact(creds_->token_secret);
    redact(token_.token());
    if (text.size() > kMaxDetailChars) text = text.substr(0, kMaxDetailChars) + "...";
    for (auto& c : text) {
      if (static_cast<unsigned char>(c) < 0x20) c = ' ';
    }
    return text;
  }

  // Every finished call: counted per method and code; UNAVAILABLE moves to the next server.
  void observe(const char* method, const grpc::Status& status, std::size_t endpoint) {
    if (observer_) {
      observer_(method, grpc_code_name(static_cast<int>(status.error_code())));
    }
    if (status.error_code() == grpc::StatusCode::UNAVAILABLE && endpoints_.size() > 1 &&
        endpoint == active_) {
      const auto& from = endpoints_[active_].url;
      active_ = (active_ + 1) % endpoints_.size();
      log::warn("modal server unavailable; failing over",
                {{"from", from}, {"server", endpoints_[active_].url}});
    }
  }

  // --- calls --------------------------------------------------------------------------------

  // Starts `call` (metadata set) on the call thread against the active server. `finished` runs
  // on the io_context thread with that server's index once the call has completed, unless the
  // source was stopped; stop() cancels the call.
  template <typename Req, typename Resp, typename Invoke, typename Finished>
  void start_call(const std::shared_ptr<UnaryCall<Req, Resp>>& call, Invoke invoke,
                  Finished finished) {
    auto sh = shared_;
    const auto id = sh->begin([call] { call->context.TryCancel(); });
    const auto endpoint = active_;
    Stub& stub = *endpoints_[endpoint].stub;
    auto completed = [this, sh, id, endpoint, finished = std::move(finished)] {
      boost::asio::post(io_, [sh, endpoint, finished]() mutable {
        if (!sh->stopped) finished(endpoint);
      });
      sh->end(id);
    };
    calls_.run([sh, id, call, invoke, &stub,
                completed = std::move(completed)](grpc::CompletionQueue& queue) mutable {
      if (sh->stopped) return sh->end(id);
      call->reader = invoke(stub, &call->context, call->request, &queue);
      call->reader->StartCall();
      call->reader->Finish(&call->response, &call->status,
                           new CallThread::Completion(std::move(completed)));
    });
  }

  // One unary call with auth, deadline, cancellation and the single JWT-refresh retry. `done` runs
  // on the io_context thread, unless the source was stopped.
  template <typename Req, typename Resp, typename Invoke>
  void unary(const char* method, Req request, Invoke invoke,
             std::function<void(const grpc::Status&, Resp&, bool counted)> done,
             bool retried = false) {
    with_auth([this, method, request = std::move(request), invoke, done = std::move(done), retried](
                  const grpc::Status& auth, bool counted) mutable {
      if (!auth.ok()) {
        Resp empty;
        done(auth, empty, counted);
        return;
      }
      auto call = std::make_shared<UnaryCall<Req, Resp>>();
      call->request = std::move(request);
      add_metadata(call->context, /*with_jwt=*/true);
      call->sent_jwt = token_.token();
      start_call(
          call, invoke,
          [this, call, method, invoke, done = std::move(done),
           retried](std::size_t endpoint) mutable {
            const grpc::Status& status = call->status;
            observe(method, status, endpoint);
            if (status.error_code() == grpc::StatusCode::UNAUTHENTICATED &&
                !call->sent_jwt.empty() && !retried) {
              if (token_.token() == call->sent_jwt) token_.clear();
              log::debug("modal auth token refused; fetching a new one", {{"method", method}});
              unary<Req, Resp>(method, call->request, invoke, std::move(done), true);
              return;
            }
            done(status, call->response, false);
          });
    });
  }

  void app_list(Poller& p) {
    pb::AppListRequest request;
    request.set_environment_name(config_.environment);
    unary<pb::AppListRequest, pb::AppListResponse>(
        "AppList", std::move(request),
        [](Stub& s, grpc::ClientContext* c, const pb::AppListRequest& r, grpc::CompletionQueue* q) {
          return s.PrepareAsyncAppList(c, r, q);
        },
        [this, &p](const grpc::Status& status, pb::AppListResponse& response, bool counted) {
          if (status.ok()) {
            modal_convert::Issues issues;
            auto apps = modal_convert::apps(response, issues);
            report(issues, "AppList", "app without app_id skipped");
            sink_.modal_apps(std::move(apps));
          }
          call_done(p, "AppList", status, counted);
        });
  }

  // app_id "": the environment-wide form, split by app; else one app.
  void task_list(Poller& p, const std::string& app_id, std::vector<std::string> want) {
    pb::TaskListRequest request;
    request.set_environment_name(config_.environment);
    request.set_app_id(app_id);
    unary<pb::TaskListRequest, pb::TaskListResponse>(
        "TaskList", std::move(request),
        [](Stub& s, grpc::ClientContext* c, const pb::TaskListRequest& r,
           grpc::CompletionQueue* q) { return s.PrepareAsyncTaskList(c, r, q); },
        [this, &p, app_id, want](const grpc::Status& status, pb::TaskListResponse& response,
                                 bool counted) {
          const auto code = status.error_code();
          if (app_id.empty() && (code == grpc::StatusCode::INVALID_ARGUMENT ||
                                 code == grpc::StatusCode::FAILED_PRECONDITION)) {
            // This server wants one app per TaskList: switch for good, and finish this round so.
            if (!counted) sink_.count_error(kComponent, error_type(code));
            per_app_tasks_ = true;
            log::warn("modal TaskList refuses the environment-wide form; listing per app",
                      {{"error_type", error_type(code)}, {"apps", want.size()}});
            for (const auto& id : want) {
              p.queue.push_back([this, &p, id] { task_list(p, id, {id}); });
            }
            call_done(p, "TaskList", grpc::Status::OK, true);
            return;
          }
          if (status.ok()) {
            modal_convert::Issues issues;
            auto by_app = modal_convert::tasks_by_app(response, app_id, want, issues);
            report(issues, "TaskList", "task without task id or app id skipped");
            for (auto& [id, tasks] : by_app) {
              for (const auto& t : tasks) {
                p.listed_tasks.insert(t.task_id);
                if (seen_tasks_.insert(t.task_id).second) budget_.add_task(t.task_id);
              }
              sink_.modal_tasks(id, std::move(tasks));
            }
            budget_kick();
          }
          call_done(p, "TaskList", status, counted);
        });
  }

  void task_info(const std::string& task_id) {
    pb::TaskGetInfoRequest request;
    request.set_task_id(task_id);
    unary<pb::TaskGetInfoRequest, pb::TaskGetInfoResponse>(
        "TaskGetInfo", std::move(request),
        [](Stub& s, grpc::ClientContext* c, const pb::TaskGetInfoRequest& r,
           grpc::CompletionQueue* q) { return s.PrepareAsyncTaskGetInfo(c, r, q); },
        [this, task_id](const grpc::Status& status, pb::TaskGetInfoResponse& response,
                        bool counted) {
          if (status.ok()) {
            sink_.modal_task_info(modal_convert::task_info(response, task_id));
          } else if (status.error_code() != grpc::StatusCode::NOT_FOUND) {
            // Ask again when it is still listed next round.
            seen_tasks_.erase(task_id);
          }
          budget_done("TaskGetInfo", status, counted);
        });
  }

  void function_stats(const std::string& function_id) {
    pb::FunctionGetCurrentStatsRequest request;
    request.set_function_id(function_id);
    unary<pb::FunctionGetCurrentStatsRequest, pb::FunctionStats>(
        "FunctionGetCurrentStats", std::move(request),
        [](Stub& s, grpc::ClientContext* c, const pb::FunctionGetCurrentStatsRequest& r,
           grpc::CompletionQueue* q) { return s.PrepareAsyncFunctionGetCurrentStats(c, r, q); },
        [this, function_id](const grpc::Status& status, pb::FunctionStats& response, bool counted) {
          if (status.ok()) {
            sink_.modal_function_stats(modal_convert::function_stats(response, function_id));
          }
          budget_done("FunctionGetCurrentStats", status, counted);
        });
  }

  void billing_rates(Poller& p) {
    unary<pb::WorkspaceBillingRatesRequest, pb::WorkspaceBillingRatesResponse>(
        "WorkspaceBillingRates", pb::WorkspaceBillingRatesRequest{},
        [](Stub& s, grpc::ClientContext* c, const pb::WorkspaceBillingRatesRequest& r,
           grpc::CompletionQueue* q) { return s.PrepareAsyncWorkspaceBillingRates(c, r, q); },
        [this, &p](const grpc::Status& status, pb::WorkspaceBillingRatesResponse& response,
                   bool counted) {
          if (status.ok()) {
            modal_convert::Issues issues;
            auto converted = modal_convert::rates(response, issues);
            report(issues, "WorkspaceBillingRates", "rate that is not a finite decimal skipped");
            for (const auto& key : converted.deprecated) {
              if (deprecated_logged_.insert(key).second) {
                log::warn("modal rate key is deprecated; ignored", {{"key", key.substr(0, 80)}});
              }
            }
            sink_.modal_rates(std::move(converted.rates));
          }
          call_done(p, "WorkspaceBillingRates", status, counted);
        });
  }

  // Billing window for one resolution, in unix seconds: from the start of the interval 30 days
  // ("d") or 24 hours ("h") back to now. Modal bills complete intervals only; the model adds the
  // running estimate for the rest (docs/modal.md).
  static std::pair<std::int64_t, std::int64_t> billing_window(const std::string& resolution) {
    const std::int64_t now =
        std::chrono::duration_cast<std::chrono::seconds>(SystemClock::now().time_since_epoch())
            .count();
    if (resolution == "d") {
      const std::int64_t midnight = now - now % 86400;
      return {midnight - (ModalSource::kBillingDailyLookbackDays - 1) * std::int64_t{86400}, now};
    }
    const std::int64_t hour = now - now % 3600;
    return {hour - 24 * 3600, now};
  }

  void billing_report(Poller& p, const std::string& resolution,
                      const std::vector<std::string>& app_ids, bool retried = false) {
    with_auth([this, &p, resolution, app_ids, retried](const grpc::Status& auth, bool counted) {
      if (!auth.ok()) {
        call_done(p, "WorkspaceBillingReport", auth, counted);
        return;
      }
      const auto [start, end] = billing_window(resolution);
      auto reader = std::make_shared<BillingReader>();
      *reader->request.mutable_start_timestamp() = to_timestamp(start);
      *reader->request.mutable_end_timestamp() = to_timestamp(end);
      reader->request.set_resolution(resolution);
      for (const auto& id : app_ids) reader->request.add_app_ids(id);
      add_metadata(reader->context, /*with_jwt=*/true);
      reader->sent_jwt = token_.token();
      auto sh = shared_;
      const auto id = sh->begin([reader] { reader->context.TryCancel(); });
      const auto endpoint = active_;
      reader->on_done = [this, sh, id, &p, resolution, app_ids, retried, start = start, end = end,
                         endpoint](const grpc::Status& status, BillingReader& r) {
        boost::asio::post(io_, [this, sh, &p, status, items = std::move(r.items),
                                overflow = r.overflow, sent_jwt = r.sent_jwt, resolution, app_ids,
                                retried, start, end, endpoint]() mutable {
          if (sh->stopped) return;
          observe("WorkspaceBillingReport", status, endpoint);
          if (status.error_code() == grpc::StatusCode::UNAUTHENTICATED && !sent_jwt.empty() &&
              !retried) {
            if (token_.token() == sent_jwt) token_.clear();
            billing_report(p, resolution, app_ids, true);
            return;
          }
          if (overflow) {
            sink_.count_error(kComponent, "parse");
            fail_round(p, Failure{"WorkspaceBillingReport", grpc::StatusCode::OUT_OF_RANGE, "parse",
                                  "more than 200000 billing items; report dropped"});
            call_done(p, "WorkspaceBillingReport", grpc::Status::OK, true);
            return;
          }
          if (status.ok()) {
            modal_convert::Issues issues;
            auto report_ = modal_convert::billing(resolution, static_cast<double>(start),
                                                  static_cast<double>(end), items, issues);
            if (issues.total() > 0) {
              for (int i = 0; i < issues.total(); ++i) sink_.count_error(kComponent, "parse");
              log::warn(
                  "modal billing values skipped: not a finite decimal, or no app id / "
                  "interval",
                  {{"resolution", resolution},
                   {"skipped", issues.malformed},
                   {"not_finite", issues.not_finite},
                   {"example_cost", issues.example}});
            }
            sink_.modal_billing(std::move(report_));
          }
          call_done(p, "WorkspaceBillingReport", status, false);
        });
        sh->end(id);
      };
      Stub& stub = *endpoints_[endpoint].stub;
      calls_.run([sh, id, reader, &stub](grpc::CompletionQueue& queue) {
        if (sh->stopped) return sh->end(id);
        reader->start(stub, queue, reader);
      });
    });
  }

  // Data that no longer makes sense: counted as "parse" and logged once per response.
  void report(const modal_convert::Issues& issues, std::string_view method, std::string_view what) {
    if (issues.total() == 0) return;
    for (int i = 0; i < issues.total(); ++i) sink_.count_error(kComponent, "parse");
    log::warn("modal response item ignored", {{"method", method},
                                              {"what", what},
                                              {"count", issues.total()},
                                              {"not_finite", issues.not_finite},
                                              {"example", issues.example}});
  }

  boost::asio::io_context& io_;
  ModalConfig config_;
  BackoffConfig backoff_config_;
  ModalSink& sink_;
  SourceHealth& health_;
  CallObserver observer_;
  std::shared_ptr<Shared> shared_ = std::make_shared<Shared>();
  std::vector<Endpoint> endpoints_;
  CallThread calls_;  // after endpoints_: gone before the stubs and channels are
  std::size_t active_ = 0;
  std::vector<std::unique_ptr<Poller>> pollers_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  bool started_ = false;
  bool per_app_tasks_ = false;
  std::set<std::string> seen_tasks_;  // listed tasks whose TaskGetInfo is done or queued

  CallBudget budget_;
  boost::asio::steady_timer budget_timer_;
  boost::asio::steady_timer watch_timer_;
  Duration watch_period_{1000};
  SteadyClock::duration budget_period_{};
  SteadyClock::time_point budget_next_allowed_{};
  SteadyClock::time_point budget_paused_until_{};
  SteadyClock::time_point budget_armed_at_{};
  bool budget_armed_ = false;
  std::uint64_t budget_generation_ = 0;
  int budget_in_flight_ = 0;
  Backoff budget_backoff_;

  std::optional<ModalCredentials> creds_;
  TokenLifetime token_;
  std::mt19937_64 rng_;
  bool jwt_fetching_ = false;
  bool jwt_unsupported_ = false;
  std::vector<AuthContinuation> jwt_waiters_;
  std::set<std::string> unimplemented_logged_;
  std::set<std::string> deprecated_logged_;
};

ModalSource::ModalSource(boost::asio::io_context& io, ModalConfig config, BackoffConfig backoff,
                         ModalSink& sink, SourceHealth& health, CallObserver observer)
    : impl_(std::make_unique<Impl>(io, std::move(config), backoff, sink, health,
                                   std::move(observer))) {}

ModalSource::~ModalSource() = default;

void ModalSource::start() {
  impl_->start();
}
void ModalSource::stop() {
  impl_->stop();
}

}  // namespace mx
