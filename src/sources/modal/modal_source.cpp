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
#include "sources/modal/decimal.h"
#include "sources/modal/modal_util.h"

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
constexpr auto kJwtRefreshMargin = std::chrono::seconds(60);
constexpr auto kJwtDefaultLifetime = std::chrono::minutes(5);
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

std::optional<double> positive_or_none(double v) {
  if (v > 0) return v;
  return std::nullopt;
}

double to_unix(const google::protobuf::Timestamp& ts) {
  return static_cast<double>(ts.seconds()) + static_cast<double>(ts.nanos()) / 1e9;
}

google::protobuf::Timestamp to_timestamp(std::int64_t unix_seconds) {
  google::protobuf::Timestamp ts;
  ts.set_seconds(unix_seconds);
  return ts;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string error_type(grpc::StatusCode code) {
  return "grpc_" + std::string(grpc_code_name(static_cast<int>(code)));
}

bool is_retryable(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::DEADLINE_EXCEEDED ||
         code == grpc::StatusCode::RESOURCE_EXHAUSTED;
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
  std::string sent_jwt;
};

// Server-streaming read of WorkspaceBillingReport. It owns itself from start() until OnDone.
class BillingReader final : public grpc::ClientReadReactor<pb::WorkspaceBillingReportItem> {
 public:
  grpc::ClientContext context;
  pb::WorkspaceBillingReportRequest request;
  std::vector<pb::WorkspaceBillingReportItem> items;
  bool overflow = false;
  std::string sent_jwt;
  // Runs on a gRPC thread once the stream is over; may move `items` out.
  std::function<void(const grpc::Status&, BillingReader&)> on_done;

  void start(Stub& stub, std::shared_ptr<BillingReader> self) {
    self_ = std::move(self);
    stub.async()->WorkspaceBillingReport(&context, &request, this);
    StartRead(&item_);
    StartCall();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // end of stream or broken: OnDone follows with the status
    if (items.size() >= kMaxBillingItems) {
      overflow = true;
      context.TryCancel();
      return;
    }
    items.push_back(std::move(item_));
    item_.Clear();
    StartRead(&item_);
  }

  void OnDone(const grpc::Status& status) override {
    auto keep = std::move(self_);  // the last reaction: release ourselves when it returns
    on_done(status, *this);
  }

 private:
  pb::WorkspaceBillingReportItem item_;
  std::shared_ptr<BillingReader> self_;
};

}  // namespace

class ModalSource::Impl {
 public:
  Impl(boost::asio::io_context& io, ModalConfig config, BackoffConfig backoff, ModalSink& sink)
      : io_(io), config_(std::move(config)), backoff_config_(backoff), sink_(sink) {
    std::string error;
    auto target = parse_modal_server_url(config_.server_url, &error);
    if (!target) throw ConfigError{error};
    if (!valid_metadata_value(config_.client_version)) {
      throw ConfigError{"modal.client_version holds characters that cannot be sent as metadata"};
    }
    grpc::ChannelArguments args;
    args.SetUserAgentPrefix("modal-exporter");
    args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);  // retries are paced by our own backoff
    args.SetMaxReceiveMessageSize(64 * 1024 * 1024);
    auto credentials =
        target->tls ? grpc::SslCredentials(system_roots()) : grpc::InsecureChannelCredentials();
    channel_ = grpc::CreateCustomChannel(target->target, credentials, args);
    stub_ = pb::ModalClient::NewStub(channel_);

    make_poller(Kind::apps, "apps", config_.apps_interval);
    make_poller(Kind::tasks, "tasks", config_.tasks_interval);
    make_poller(Kind::stats, "stats", config_.stats_interval);
    make_poller(Kind::billing, "billing", config_.billing_interval);
    make_poller(Kind::rates, "rates", config_.rates_interval);
  }

  ~Impl() { stop(); }

  void start() {
    if (started_ || shared_->stopped) return;
    started_ = true;
    work_.emplace(io_.get_executor());
    log::info("modal source starting",
              {{"server", config_.server_url}, {"environment", config_.environment}});
    for (auto& p : pollers_) schedule(*p, Duration{0});
  }

  void stop() {
    if (shared_->stopped.exchange(true)) return;
    for (auto& p : pollers_) p->timer.cancel();
    jwt_waiters_.clear();
    std::vector<std::function<void()>> cancels;
    {
      std::lock_guard lock(shared_->mutex);
      for (auto& [id, cancel] : shared_->cancellers) cancels.push_back(cancel);
    }
    for (auto& cancel : cancels) cancel();  // outside the lock: a callback may run inline
    cancels.clear();
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
  enum class Kind { apps, tasks, stats, billing, rates };

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
    // The current round.
    SteadyClock::time_point started;
    std::deque<std::function<void()>> queue;
    int in_flight = 0;
    bool abort = false;
    std::optional<Failure> failure;
    enum class Pace { interval, backoff, max } pace = Pace::interval;
    std::set<std::string> queued_keys;  // dedupes TaskGetInfo within one round
  };

  // --- rounds -------------------------------------------------------------------------------

  void make_poller(Kind kind, const char* name, Duration interval) {
    pollers_.push_back(std::make_unique<Poller>(io_, kind, name, interval, backoff_config_));
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
    p.queue.clear();
    p.queued_keys.clear();
    p.in_flight = 0;
    p.abort = false;
    p.failure.reset();
    p.pace = Poller::Pace::interval;

    switch (p.kind) {
      case Kind::apps:
        p.queue.push_back([this, &p] { app_list(p); });
        break;
      case Kind::tasks:
        for (const auto& app_id : unique(sink_.active_job_app_ids())) {
          p.queue.push_back([this, &p, app_id] { task_list(p, app_id); });
        }
        break;
      case Kind::stats:
        for (const auto& function_id : unique(sink_.job_function_ids())) {
          p.queue.push_back([this, &p, function_id] { function_stats(p, function_id); });
        }
        break;
      case Kind::billing: {
        auto app_ids = unique(sink_.known_job_app_ids());
        if (!app_ids.empty()) {
          p.queue.push_back([this, &p, app_ids] { billing_report(p, "d", app_ids); });
          p.queue.push_back([this, &p, app_ids] { billing_report(p, "h", app_ids); });
        }
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
      // The task/function/app went away between listing and asking: ordinary churn.
      log::debug("modal object not found", {{"method", method}});
      return;
    }
    if (code == grpc::StatusCode::UNIMPLEMENTED &&
        unimplemented_logged_.insert(std::string(method)).second) {
      log::warn("modal API does not implement this call; its metrics stay absent",
                {{"method", method}, {"error_type", type}});
    }
    fail_round(p, Failure{std::string(method), code, type, scrub(status.error_message())});
    if (is_auth(code)) {
      p.pace = Poller::Pace::max;
    } else if ((is_retryable(code) || code == grpc::StatusCode::UNIMPLEMENTED) &&
               p.pace != Poller::Pace::max) {
      p.pace = Poller::Pace::backoff;
    }
    // Further calls would meet the same outage, refusal or missing method: stop issuing them.
    // `counted` errors come from a failed AuthTokenGet, which every further call would repeat.
    if (is_auth(code) || is_retryable(code) || code == grpc::StatusCode::UNIMPLEMENTED || counted) {
      p.abort = true;
    }
  }

  // A failure that is not a gRPC status (malformed data, missing credentials).
  void fail_round(Poller& p, Failure failure) {
    if (!p.failure) p.failure = std::move(failure);
  }

  void finish_round(Poller& p) {
    const double seconds = std::chrono::duration<double>(SteadyClock::now() - p.started).count();
    if (!p.failure) {
      p.backoff.reset();
      if (p.kind == Kind::apps) sink_.source_succeeded(kSource, seconds);
      schedule(p, p.interval);
      return;
    }
    sink_.source_failed(kSource);
    Duration delay = p.interval;
    switch (p.pace) {
      case Poller::Pace::interval:
        break;
      case Poller::Pace::backoff:
        delay = p.backoff.next();
        break;
      case Poller::Pace::max:
        p.backoff.next();
        delay = backoff_config_.max;
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
      jwt_.clear();
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
    if (with_jwt && !jwt_.empty()) ctx.AddMetadata("x-modal-auth-token", jwt_);
  }

  using AuthContinuation = std::function<void(const grpc::Status&, bool counted)>;

  // Runs `k` once a usable JWT is cached (or the server has none to give). Concurrent callers
  // share one AuthTokenGet.
  void with_auth(AuthContinuation k) {
    if (jwt_unsupported_ || (!jwt_.empty() && SystemClock::now() < jwt_valid_until_)) {
      k(grpc::Status::OK, false);
      return;
    }
    jwt_waiters_.push_back(std::move(k));
    if (jwt_fetching_) return;
    jwt_fetching_ = true;

    auto call = std::make_shared<UnaryCall<pb::AuthTokenGetRequest, pb::AuthTokenGetResponse>>();
    add_metadata(call->context, /*with_jwt=*/false);
    auto sh = shared_;
    const auto id = sh->begin([call] { call->context.TryCancel(); });
    stub_->async()->AuthTokenGet(&call->context, &call->request, &call->response,
                                 [this, sh, id, call](grpc::Status status) {
                                   boost::asio::post(io_, [this, sh, call, status] {
                                     if (sh->stopped) return;
                                     on_auth_token(status, call->response.token());
                                   });
                                   sh->end(id);
                                 });
  }

  void on_auth_token(const grpc::Status& status, const std::string& token) {
    jwt_fetching_ = false;
    grpc::Status result = grpc::Status::OK;
    bool counted = false;
    if (status.ok()) {
      if (token.empty() || !valid_metadata_value(token)) {
        // Nonsense from the server: go on with the token id/secret alone this time.
        sink_.count_error(kComponent, "parse");
        log::warn("modal AuthTokenGet returned an unusable token; calling without it");
        jwt_.clear();
        jwt_valid_until_ = {};
        counted = true;
      } else {
        jwt_ = token;
        const auto now = SystemClock::now();
        const auto exp = jwt_expiry(token);
        // Near-expiry tokens are still used by the waiting calls but not kept.
        jwt_valid_until_ = exp ? *exp - kJwtRefreshMargin : now + kJwtDefaultLifetime;
      }
    } else if (status.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
      jwt_unsupported_ = true;
      log::info("modal server does not implement AuthTokenGet; calling without x-modal-auth-token");
    } else {
      sink_.count_error(kComponent, error_type(status.error_code()));
      result = grpc::Status(status.error_code(), "AuthTokenGet: " + status.error_message());
      counted = true;
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
    redact(jwt_);
    if (text.size() > kMaxDetailChars) text = text.substr(0, kMaxDetailChars) + "...";
    for (auto& c : text) {
      if (static_cast<unsigned char>(c) < 0x20) c = ' ';
    }
    return text;
  }

  // --- calls --------------------------------------------------------------------------------

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
      call->request = request;
      add_metadata(call->context, /*with_jwt=*/true);
      call->sent_jwt = jwt_;
      auto sh = shared_;
      const auto id = sh->begin([call] { call->context.TryCancel(); });
      invoke(*stub_, &call->context, &call->request, &call->response,
             [this, sh, id, call, method, request, invoke, done, retried](grpc::Status status) {
               boost::asio::post(io_, [this, sh, call, status, method, request, invoke, done,
                                       retried]() mutable {
                 if (sh->stopped) return;
                 if (status.error_code() == grpc::StatusCode::UNAUTHENTICATED &&
                     !call->sent_jwt.empty() && !retried) {
                   if (jwt_ == call->sent_jwt) jwt_.clear();
                   log::debug("modal auth token refused; fetching a new one", {{"method", method}});
                   unary<Req, Resp>(method, std::move(request), invoke, std::move(done), true);
                   return;
                 }
                 done(status, call->response, false);
               });
               sh->end(id);
             });
    });
  }

  void app_list(Poller& p) {
    pb::AppListRequest request;
    request.set_environment_name(config_.environment);
    unary<pb::AppListRequest, pb::AppListResponse>(
        "AppList", std::move(request),
        [](Stub& s, grpc::ClientContext* c, const pb::AppListRequest* r, pb::AppListResponse* o,
           std::function<void(grpc::Status)> f) { s.async()->AppList(c, r, o, std::move(f)); },
        [this, &p](const grpc::Status& status, pb::AppListResponse& response, bool counted) {
          if (status.ok()) {
            std::vector<ModalApp> apps;
            apps.reserve(static_cast<std::size_t>(response.apps_size()));
            int skipped = 0;
            for (const auto& item : response.apps()) {
              if (item.app_id().empty()) {
                ++skipped;
                continue;
              }
              ModalApp app;
              app.app_id = item.app_id();
              app.name = item.name();
              app.description = item.description();
              app.state = static_cast<int>(item.state());
              app.running_tasks = std::max(0, item.n_running_tasks());
              app.created_at = positive_or_none(item.created_at());
              app.stopped_at = positive_or_none(item.stopped_at());
              apps.push_back(std::move(app));
            }
            if (skipped > 0) parse_problem("AppList", "app without app_id skipped", skipped);
            sink_.modal_apps(std::move(apps));
          }
          call_done(p, "AppList", status, counted);
        });
  }

  void task_list(Poller& p, const std::string& app_id) {
    pb::TaskListRequest request;
    request.set_environment_name(config_.environment);
    request.set_app_id(app_id);
    unary<pb::TaskListRequest, pb::TaskListResponse>(
        "TaskList", std::move(request),
        [](Stub& s, grpc::ClientContext* c, const pb::TaskListRequest* r, pb::TaskListResponse* o,
           std::function<void(grpc::Status)> f) { s.async()->TaskList(c, r, o, std::move(f)); },
        [this, &p, app_id](const grpc::Status& status, pb::TaskListResponse& response,
                           bool counted) {
          if (status.ok()) {
            std::vector<ModalTask> tasks;
            tasks.reserve(static_cast<std::size_t>(response.tasks_size()));
            int skipped = 0;
            for (const auto& item : response.tasks()) {
              if (item.task_id().empty()) {
                ++skipped;
                continue;
              }
              ModalTask task;
              task.task_id = item.task_id();
              task.app_id = item.app_id().empty() ? app_id : item.app_id();
              task.enqueued_at = positive_or_none(item.enqueued_at());
              task.started_at = positive_or_none(item.started_at());
              tasks.push_back(std::move(task));
            }
            if (skipped > 0) parse_problem("TaskList", "task without task_id skipped", skipped);
            std::vector<std::string> ids;
            for (const auto& t : tasks) ids.push_back(t.task_id);
            sink_.modal_tasks(app_id, std::move(tasks));
            // Ask after the sink has seen the list, so it can decide what it already knows.
            for (const auto& id : ids) {
              if (sink_.task_info_known(id) || !p.queued_keys.insert(id).second) continue;
              p.queue.push_back([this, &p, id] { task_info(p, id); });
            }
          }
          call_done(p, "TaskList", status, counted);
        });
  }

  void task_info(Poller& p, const std::string& task_id) {
    pb::TaskGetInfoRequest request;
    request.set_task_id(task_id);
    unary<pb::TaskGetInfoRequest, pb::TaskGetInfoResponse>(
        "TaskGetInfo", std::move(request),
        [](Stub& s, grpc::ClientContext* c, const pb::TaskGetInfoRequest* r,
           pb::TaskGetInfoResponse* o,
           std::function<void(grpc::Status)> f) { s.async()->TaskGetInfo(c, r, o, std::move(f)); },
        [this, &p, task_id](const grpc::Status& status, pb::TaskGetInfoResponse& response,
                            bool counted) {
          if (status.ok()) {
            const auto& in = response.info();
            ModalTaskInfo info;
            info.task_id = in.id().empty() ? task_id : in.id();
            info.app_id = response.app_id();
            info.enqueued_at = positive_or_none(in.enqueued_at());
            info.started_at = positive_or_none(in.started_at());
            info.finished_at = positive_or_none(in.finished_at());
            info.gpu_type =
                in.gpu_config().gpu_type().empty() ? in.gpu_type() : in.gpu_config().gpu_type();
            info.gpu_count = in.gpu_config().count();
            // A GPU named without a count is one GPU, as in the operator's GPU specs.
            if (info.gpu_count == 0 && !info.gpu_type.empty()) info.gpu_count = 1;
            info.result_status = static_cast<int>(in.result().status());
            sink_.modal_task_info(std::move(info));
          }
          call_done(p, "TaskGetInfo", status, counted);
        });
  }

  void function_stats(Poller& p, const std::string& function_id) {
    pb::FunctionGetCurrentStatsRequest request;
    request.set_function_id(function_id);
    unary<pb::FunctionGetCurrentStatsRequest, pb::FunctionStats>(
        "FunctionGetCurrentStats", std::move(request),
        [](Stub& s, grpc::ClientContext* c, const pb::FunctionGetCurrentStatsRequest* r,
           pb::FunctionStats* o, std::function<void(grpc::Status)> f) {
          s.async()->FunctionGetCurrentStats(c, r, o, std::move(f));
        },
        [this, &p, function_id](const grpc::Status& status, pb::FunctionStats& response,
                                bool counted) {
          if (status.ok()) {
            ModalFunctionStats stats;
            stats.function_id = function_id;
            stats.backlog = response.backlog();
            stats.num_total_tasks = response.num_total_tasks();
            stats.num_running_inputs = response.num_running_inputs();
            sink_.modal_function_stats(std::move(stats));
          }
          call_done(p, "FunctionGetCurrentStats", status, counted);
        });
  }

  void billing_rates(Poller& p) {
    unary<pb::WorkspaceBillingRatesRequest, pb::WorkspaceBillingRatesResponse>(
        "WorkspaceBillingRates", pb::WorkspaceBillingRatesRequest{},
        [](Stub& s, grpc::ClientContext* c, const pb::WorkspaceBillingRatesRequest* r,
           pb::WorkspaceBillingRatesResponse* o, std::function<void(grpc::Status)> f) {
          s.async()->WorkspaceBillingRates(c, r, o, std::move(f));
        },
        [this, &p](const grpc::Status& status, pb::WorkspaceBillingRatesResponse& response,
                   bool counted) {
          if (status.ok()) {
            BillingRates rates;
            int skipped = 0;
            for (const auto& [key, value] : response.rates()) {
              const auto parsed = parse_usd(value);
              if (!parsed || key.empty()) {
                sink_.count_error(kComponent, "parse");
                ++skipped;
                continue;
              }
              rates.per_hour[lower(key)] = *parsed;
            }
            if (skipped > 0) {
              parse_problem("WorkspaceBillingRates", "rate that is not a plain decimal skipped",
                            skipped, /*counted=*/true);
            }
            sink_.modal_rates(std::move(rates));
          }
          call_done(p, "WorkspaceBillingRates", status, counted);
        });
  }

  // Billing window for one resolution, in unix seconds (see the header).
  static std::pair<std::int64_t, std::int64_t> billing_window(const std::string& resolution) {
    const std::int64_t now =
        std::chrono::duration_cast<std::chrono::seconds>(SystemClock::now().time_since_epoch())
            .count();
    if (resolution == "d") {
      const std::int64_t midnight = now - now % 86400;
      return {midnight - (kBillingDailyLookbackDays - 1) * std::int64_t{86400}, midnight + 86400};
    }
    const std::int64_t hour = now - now % 3600;
    return {hour - 24 * 3600, hour + 3600};
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
      reader->sent_jwt = jwt_;
      auto sh = shared_;
      const auto id = sh->begin([reader] { reader->context.TryCancel(); });
      reader->on_done = [this, sh, id, &p, resolution, app_ids, retried, start = start, end = end](
                            const grpc::Status& status, BillingReader& r) {
        boost::asio::post(
            io_, [this, sh, &p, status, items = std::move(r.items), overflow = r.overflow,
                  sent_jwt = r.sent_jwt, resolution, app_ids, retried, start, end]() mutable {
              if (sh->stopped) return;
              if (status.error_code() == grpc::StatusCode::UNAUTHENTICATED && !sent_jwt.empty() &&
                  !retried) {
                if (jwt_ == sent_jwt) jwt_.clear();
                billing_report(p, resolution, app_ids, true);
                return;
              }
              if (overflow) {
                sink_.count_error(kComponent, "parse");
                fail_round(p, Failure{"WorkspaceBillingReport", grpc::StatusCode::OUT_OF_RANGE,
                                      "parse", "more than 200000 billing items; report dropped"});
                call_done(p, "WorkspaceBillingReport", grpc::Status::OK, true);
                return;
              }
              if (status.ok()) publish_billing(resolution, start, end, items);
              call_done(p, "WorkspaceBillingReport", status, false);
            });
        sh->end(id);
      };
      reader->start(*stub_, reader);
    });
  }

  void publish_billing(const std::string& resolution, std::int64_t start, std::int64_t end,
                       const std::vector<pb::WorkspaceBillingReportItem>& items) {
    BillingReport report;
    report.resolution = resolution;
    report.start = static_cast<double>(start);
    report.end = static_cast<double>(end);
    report.items.reserve(items.size());
    int skipped = 0;
    std::string example;
    for (const auto& item : items) {
      const auto cost = parse_usd(item.cost());
      if (!cost || item.object_id().empty() || !item.has_interval()) {
        sink_.count_error(kComponent, "parse");
        if (skipped++ == 0) example = item.cost().substr(0, 40);
        continue;
      }
      report.items.push_back(BillingItem{item.object_id(), to_unix(item.interval()), *cost});
    }
    if (skipped > 0) {
      log::warn(
          "modal billing items skipped: cost not a plain non-negative decimal, or no app "
          "id / interval",
          {{"resolution", resolution}, {"skipped", skipped}, {"example_cost", example}});
    }
    sink_.modal_billing(std::move(report));
  }

  // Data that no longer makes sense: counted (unless already) and logged once per response.
  void parse_problem(std::string_view method, std::string_view what, int n, bool counted = false) {
    if (!counted) {
      for (int i = 0; i < n; ++i) sink_.count_error(kComponent, "parse");
    }
    log::warn("modal response item ignored", {{"method", method}, {"what", what}, {"count", n}});
  }

  boost::asio::io_context& io_;
  ModalConfig config_;
  BackoffConfig backoff_config_;
  ModalSink& sink_;
  std::shared_ptr<Shared> shared_ = std::make_shared<Shared>();
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<Stub> stub_;
  std::vector<std::unique_ptr<Poller>> pollers_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  bool started_ = false;

  std::optional<ModalCredentials> creds_;
  std::string jwt_;
  SystemClock::time_point jwt_valid_until_{};
  bool jwt_fetching_ = false;
  bool jwt_unsupported_ = false;
  std::vector<AuthContinuation> jwt_waiters_;
  std::set<std::string> unimplemented_logged_;
};

ModalSource::ModalSource(boost::asio::io_context& io, ModalConfig config, BackoffConfig backoff,
                         ModalSink& sink)
    : impl_(std::make_unique<Impl>(io, std::move(config), backoff, sink)) {}

ModalSource::~ModalSource() = default;

void ModalSource::start() {
  impl_->start();
}
void ModalSource::stop() {
  impl_->stop();
}

}  // namespace mx
