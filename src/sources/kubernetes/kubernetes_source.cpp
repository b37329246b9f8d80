#include "sources/kubernetes/kubernetes_source.h"

#include <chrono>
#include <cstdlib>
#include <functional>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/backoff.h"
#include "common/log.h"
#include "sources/kubernetes/api.h"
#include "sources/kubernetes/informer.h"
#include "sources/kubernetes/parse.h"

namespace mx {
namespace asio = boost::asio;
using kube::ApiError;
using kube::ErrorKind;
using nlohmann::json;

namespace {

std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::string(v) : std::string{};
}

constexpr std::size_t kMaxPodBytes = 4 * 1024 * 1024;

}  // namespace

struct KubernetesSource::State : std::enable_shared_from_this<KubernetesSource::State> {
  State(asio::io_context& io, KubernetesConfig c, BackoffConfig b, KubernetesSink& s,
        SourceHealth& h)
      : io(io),
        config(std::move(c)),
        backoff(b),
        sink(s),
        health(h),
        connect_timer(io),
        operator_timer(io),
        operator_namespace(env_or_empty("POD_NAMESPACE")),
        operator_name(env_or_empty("POD_NAME")) {}

  asio::io_context& io;
  KubernetesConfig config;
  BackoffConfig backoff;
  KubernetesSink& sink;
  SourceHealth& health;
  kube::InClusterPaths in_cluster;
  asio::steady_timer connect_timer;
  asio::steady_timer operator_timer;
  std::string operator_namespace;
  std::string operator_name;

  std::shared_ptr<kube::ApiSession> client;
  std::vector<std::shared_ptr<kube::Informer>> informers;
  std::shared_ptr<net::Exchange> operator_exchange;
  std::chrono::steady_clock::time_point started_at{};
  bool started = false;
  bool stopped = false;
  bool initial_sync_reported = false;
  bool operator_healthy = true;
  bool operator_missing_logged = false;

  static asio::awaitable<void> connect(std::shared_ptr<State> self);
  static asio::awaitable<void> poll_operator(std::shared_ptr<State> self);
  asio::awaitable<ApiError> fetch_operator_pod();
  void create_informers();
  void informer_listed(double list_seconds);
  bool all_healthy() const;
};

bool KubernetesSource::State::all_healthy() const {
  if (!operator_healthy) return false;
  for (const auto& i : informers) {
    if (!i->listed_once() || !i->healthy()) return false;
  }
  return true;
}

void KubernetesSource::State::informer_listed(double list_seconds) {
  if (!all_healthy()) return;
  if (!initial_sync_reported) {
    initial_sync_reported = true;
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started_at).count();
    log::info("Kubernetes initial sync complete",
              {{"seconds", seconds}, {"informers", informers.size()}});
    health.source_succeeded("kubernetes", seconds);
    return;
  }
  health.source_succeeded("kubernetes", list_seconds);
}

void KubernetesSource::State::create_informers() {
  auto settings = kube::InformerSettings::from(config, backoff);
  std::vector<std::string> namespaces = config.namespaces;
  if (namespaces.empty()) namespaces.push_back("");  // all namespaces
  KubernetesSink& s = sink;

  const kube::ResourceRef crd{"", "/apis/modal-operator.io/v1alpha1", "", "", "", ""};
  const kube::ResourceRef core{"", "/api/v1", "", "", "", ""};

  struct Kind {
    kube::ResourceRef ref;
    kube::InformerHandler handler;
  };
  std::vector<Kind> kinds;
  // One informer kind: `parse` turns an object into a model object (or says why not) and
  // `deliver` hands it to the sink; `remove` forgets a UID the informer tracked.
  auto add_kind = [&kinds](kube::ResourceRef base, std::string display, std::string plural,
                           auto parse, const kube::FieldFilter& fields, auto deliver,
                           std::function<void(const std::string&)> remove,
                           std::string label_selector = {}, std::string field_selector = {}) {
    Kind k{std::move(base), {}};
    k.ref.display = std::move(display);
    k.ref.plural = std::move(plural);
    k.ref.label_selector = std::move(label_selector);
    k.ref.field_selector = std::move(field_selector);
    k.handler.apply = [parse, deliver](const json& o, std::string& error) {
      auto r = parse(o);
      error = r.error;
      if (!r.object) return false;
      deliver(std::move(*r.object));
      return true;
    };
    k.handler.remove = std::move(remove);
    k.handler.fields = fields;
    kinds.push_back(std::move(k));
  };

  // Jobs come from two resources; each informer only ever deletes the UIDs it tracked.
  auto upsert_job = [&s](JobObject job) { s.upsert_job(std::move(job)); };
  auto delete_job = [&s](const std::string& uid) { s.delete_job(uid); };
  add_kind(crd, "modal-operator.io/modaljobs", "modaljobs", kube::parse_modal_job,
           kube::modal_job_fields(), upsert_job, delete_job);
  // A Pod that is not (or no longer) offloaded is not tracked; if it was, the informer calls
  // remove, so the job disappears.
  add_kind(core, "pods", "pods", kube::parse_offloaded_pod, kube::offloaded_pod_fields(),
           upsert_job, delete_job, config.pod_label_selector, config.pod_field_selector);
  add_kind(
      crd, "modal-operator.io/modalendpoints", "modalendpoints", kube::parse_modal_endpoint,
      kube::modal_endpoint_fields(), [&s](EndpointObject e) { s.upsert_endpoint(std::move(e)); },
      [&s](const std::string& uid) { s.delete_endpoint(uid); });
  if (config.watch_events) {
    add_kind(
        core, "events", "events", kube::parse_warning_event, kube::warning_event_fields(),
        [this](WarningEvent e) {
          e.operator_pod = e.about_pod && !e.pod_name.empty() && e.pod_name == operator_name &&
                           e.namespace_name == operator_namespace;
          sink.observe_warning_event(std::move(e));
        },
        [&s](const std::string& uid) { s.delete_warning_event(uid); }, "", "type=Warning");
  }

  // The hooks run on the io thread while the informer is not stopped; State outlives them
  // because stop() stops every informer before State can go away.
  std::weak_ptr<State> weak = weak_from_this();
  kube::Informer::Hooks hooks;
  hooks.listed = [weak](kube::Informer&, double seconds) {
    if (auto st = weak.lock(); st && !st->stopped) st->informer_listed(seconds);
  };
  hooks.failed = [weak](kube::Informer&) {
    if (auto st = weak.lock(); st && !st->stopped) st->health.source_failed("kubernetes");
  };
  for (const auto& ns : namespaces) {
    for (const auto& k : kinds) {
      kube::ResourceRef ref = k.ref;
      ref.namespace_name = ns;
      informers.push_back(
          std::make_shared<kube::Informer>(client, ref, k.handler, settings, sink, hooks));
    }
  }
}

asio::awaitable<void> KubernetesSource::State::connect(std::shared_ptr<State> self) {
  Backoff backoff(self->backoff.initial, self->backoff.max);
  while (!self->stopped) {
    std::string error;
    try {
      auto access = kube::resolve_cluster_access(self->config, self->in_cluster);
      self->client = std::make_shared<kube::ApiSession>(self->io.get_executor(), std::move(access),
                                                        self->config.token_reload_interval);
    } catch (const std::exception& e) {
      error = e.what();
    }
    if (error.empty()) break;
    self->health.source_failed("kubernetes");
    const Duration delay = backoff.next();
    log::error("cannot use the Kubernetes API",
               {{"error", error}, {"retry_in", format_duration(delay)}});
    self->connect_timer.expires_after(delay);
    boost::system::error_code ec;
    co_await self->connect_timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  if (self->stopped) co_return;

  const auto& server = self->client->access().server;
  log::info("watching the Kubernetes API",
            {{"server", (server.tls ? "https://" : "http://") + server.host + ":" + server.port},
             {"via", self->client->access().origin},
             {"namespaces", self->config.namespaces.empty()
                                ? std::string("*")
                                : std::to_string(self->config.namespaces.size())}});
  self->create_informers();
  for (auto& i : self->informers) i->start();
  if (!self->operator_name.empty() && !self->operator_namespace.empty()) {
    asio::co_spawn(self->io, poll_operator(self), asio::detached);
  }
}

asio::awaitable<ApiError> KubernetesSource::State::fetch_operator_pod() {
  const std::string target = "/api/v1/namespaces/" + kube::url_encode(operator_namespace) +
                             "/pods/" + kube::url_encode(operator_name);
  const auto timeout = [this] { return std::chrono::steady_clock::now() + config.request_timeout; };
  net::Request request;
  if (ApiError e = co_await client->request(target, request); e || stopped) co_return e;
  auto ex = client->exchange();
  operator_exchange = ex;
  ApiError e = co_await ex->open(request, timeout());
  if (e || stopped) co_return e;
  std::string body;
  const int status = ex->status();
  e = co_await ex->read_body(body, kMaxPodBytes, timeout());
  operator_exchange.reset();
  if (stopped) co_return ApiError{ErrorKind::cancelled, 0, "cancelled", std::nullopt};
  if (status == 404) {
    if (!operator_missing_logged) {
      log::warn("the operator Pod was not found; no restart count",
                {{"namespace", operator_namespace}, {"pod", operator_name}});
    }
    operator_missing_logged = true;
    sink.set_operator_restarts(std::nullopt);
    co_return ApiError{};
  }
  if (status == 401) client->unauthorized(request);
  if (status != 200) {
    ApiError h{ErrorKind::http, status, kube::status_message(body), ex->retry_after()};
    if (h.message.empty()) h.message = "HTTP " + std::to_string(status);
    co_return h;
  }
  if (e) co_return e;
  json pod = json::parse(body, nullptr, false);
  if (pod.is_discarded() || !pod.is_object()) {
    co_return ApiError{ErrorKind::parse, 200, "the operator Pod is not a JSON object",
                       std::nullopt};
  }
  auto restarts = kube::container_restart_count(pod, config.operator_container);
  if (!restarts) {
    log::debug("the operator container has no status in its Pod",
               {{"pod", operator_name}, {"container", config.operator_container}});
  }
  operator_missing_logged = false;
  sink.set_operator_restarts(restarts);
  co_return ApiError{};
}

asio::awaitable<void> KubernetesSource::State::poll_operator(std::shared_ptr<State> self) {
  Backoff backoff(self->backoff.initial, self->backoff.max);
  const kube::ResourceRef pods{"pods", "/api/v1", "pods", self->operator_namespace, "", ""};
  while (!self->stopped) {
    const auto start = std::chrono::steady_clock::now();
    ApiError e;
    try {
      e = co_await self->fetch_operator_pod();
    } catch (const std::exception& ex) {
      e = ApiError{ErrorKind::parse, 0, std::string("internal error: ") + ex.what(), std::nullopt};
    }
    if (self->stopped) co_return;
    Duration delay = self->config.operator_pod_interval;
    if (e) {
      self->operator_healthy = false;
      self->sink.count_error("kubernetes_api", kube::error_type(e));
      self->health.source_failed("kubernetes");
      delay = backoff.next(e.retry_after);
      kube::log_api_failure("get", pods, e, delay);
    } else {
      backoff.reset();
      if (!self->operator_healthy) {
        self->operator_healthy = true;
        if (self->initial_sync_reported && self->all_healthy()) {
          self->health.source_succeeded(
              "kubernetes",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
        }
      }
    }
    self->operator_timer.expires_after(delay);
    boost::system::error_code ec;
    co_await self->operator_timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

KubernetesSource::KubernetesSource(asio::io_context& io, KubernetesConfig config,
                                   BackoffConfig backoff, KubernetesSink& sink,
                                   SourceHealth& health)
    : state_(std::make_shared<State>(io, std::move(config), backoff, sink, health)) {}

KubernetesSource::~KubernetesSource() {
  stop();
}

void KubernetesSource::set_in_cluster_paths(kube::InClusterPaths paths) {
  state_->in_cluster = std::move(paths);
}

void KubernetesSource::set_operator_pod(std::string namespace_name, std::string name) {
  state_->operator_namespace = std::move(namespace_name);
  state_->operator_name = std::move(name);
}

void KubernetesSource::start() {
  if (state_->started || state_->stopped) return;
  state_->started = true;
  state_->started_at = std::chrono::steady_clock::now();
  asio::co_spawn(state_->io, State::connect(state_), asio::detached);
}

void KubernetesSource::stop() {
  auto& s = *state_;
  if (s.stopped) return;
  s.stopped = true;
  s.connect_timer.cancel();
  s.operator_timer.cancel();
  if (s.operator_exchange) s.operator_exchange->cancel();
  if (s.client) s.client->cancel();
  for (auto& i : s.informers) i->stop();
}

}  // namespace mx
