#include "sources/kubernetes/informer.h"

#include <algorithm>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/log.h"
#include "sources/kubernetes/parse.h"

namespace mx::kube {
namespace {

using nlohmann::json;

constexpr std::size_t kMaxErrorBodyBytes = 64 * 1024;

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::string object_uid(const json& object) {
  if (!object.is_object()) return {};
  auto meta = object.find("metadata");
  if (meta == object.end() || !meta->is_object()) return {};
  auto uid = meta->find("uid");
  if (uid == meta->end() || !uid->is_string()) return {};
  return uid->get<std::string>();
}

}  // namespace

InformerSettings InformerSettings::from(const KubernetesConfig& config,
                                        const BackoffConfig& backoff) {
  InformerSettings s;
  s.list_page_size = std::max(1, config.list_page_size);
  s.request_timeout = config.request_timeout;
  s.watch_timeout = config.watch_timeout;
  s.resync_interval = config.resync_interval;
  s.max_event_bytes = std::max<std::size_t>(1024, config.max_event_bytes);
  // A LIST page holds up to list_page_size objects; each is bounded like one watch event.
  s.max_list_bytes = std::max<std::size_t>(s.max_list_bytes, s.max_event_bytes * 4);
  s.backoff = backoff;
  return s;
}

Informer::Informer(std::shared_ptr<ApiSession> client, ResourceRef resource,
                   InformerHandler handler, InformerSettings settings, SourceSink& sink,
                   Hooks hooks)
    : client_(std::move(client)),
      resource_(std::move(resource)),
      handler_(std::move(handler)),
      settings_(settings),
      sink_(sink),
      hooks_(std::move(hooks)),
      backoff_(settings.backoff.initial, settings.backoff.max),
      timer_(client_->executor()) {}

void Informer::start() {
  asio::co_spawn(timer_.get_executor(), run(shared_from_this()), asio::detached);
}

void Informer::stop() {
  stopped_ = true;
  timer_.cancel();
  if (current_) current_->cancel();
}

asio::awaitable<void> Informer::run(std::shared_ptr<Informer> self) {
  while (!self->stopped_) {
    std::string crash;
    try {
      co_await self->cycle();
    } catch (const std::exception& e) {
      crash = e.what();
    }
    if (self->stopped_) co_return;
    if (!crash.empty()) {
      // Never expected; keep the informer alive rather than lose the resource for good.
      ApiError e;
      e.kind = ErrorKind::parse;
      e.message = "internal error: " + crash;
      co_await self->fail("list", e);
    }
  }
}

asio::awaitable<void> Informer::sleep(Duration d) {
  timer_.expires_after(d);
  boost::system::error_code ec;
  co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

asio::awaitable<void> Informer::cycle() {
  const auto list_start = Clock::now();
  ApiError e = co_await list();
  if (stopped_) co_return;
  if (e) {
    co_await fail("list", e);
    co_return;
  }
  healthy_ = true;
  listed_once_ = true;
  resync_at_ = Clock::now() + settings_.resync_interval;
  if (hooks_.listed) hooks_.listed(*this, seconds_since(list_start));

  while (!stopped_) {
    if (Clock::now() >= resync_at_) co_return;  // periodic full re-list
    const auto watch_start = Clock::now();
    WatchEnd end = WatchEnd::clean;
    bool had_events = false;
    e = co_await watch(end, had_events);
    if (stopped_) co_return;
    if (e) {
      co_await fail("watch", e);
      co_return;  // re-list after every error: the watch may have missed events
    }
    if (end != WatchEnd::clean) co_return;
    // A server that ends every watch at once must not turn into a tight loop.
    if (!had_events && Clock::now() - watch_start < std::chrono::seconds(1)) {
      co_await sleep(settings_.backoff.initial);
    }
  }
}

std::string Informer::selectors() const {
  std::string q;
  if (!resource_.label_selector.empty())
    q += "&labelSelector=" + url_encode(resource_.label_selector);
  if (!resource_.field_selector.empty())
    q += "&fieldSelector=" + url_encode(resource_.field_selector);
  return q;
}

asio::awaitable<ApiError> Informer::open(std::string target, const char* verb,
                                         std::shared_ptr<net::Exchange>& out) {
  for (int attempt = 0;; ++attempt) {
    net::Request request;
    if (ApiError e = co_await client_->request(target, request); e || stopped_) {
      if (stopped_) co_return ApiError{ErrorKind::cancelled, 0, "cancelled", std::nullopt};
      co_return e;
    }
    out = client_->exchange();
    current_ = out;
    ApiError e = co_await out->open(request, Clock::now() + settings_.request_timeout);
    if (e || stopped_) co_return e;
    const int status = out->status();
    if (status == 200) co_return ApiError{};

    std::string body;
    co_await out->read_body(body, kMaxErrorBodyBytes, Clock::now() + settings_.request_timeout);
    if (stopped_) co_return ApiError{ErrorKind::cancelled, 0, "cancelled", std::nullopt};
    ApiError http_error;
    http_error.kind = ErrorKind::http;
    http_error.status = status;
    http_error.retry_after = out->retry_after();
    http_error.message = status_message(body);
    if (http_error.message.empty()) http_error.message = "HTTP " + std::to_string(status);

    // A rotated service-account token or an expired exec credential: re-read the file or run
    // the plugin, and retry once at once. Another informer may have renewed it already, so the
    // session compares with the credential this request carried.
    if (status == 401 && client_->unauthorized(request) && attempt == 0) {
      sink_.count_error("kubernetes_api", "auth");
      log::info("Kubernetes API rejected the credential; retrying with a new one",
                {{"verb", verb}, {"resource", resource_.display}});
      continue;
    }
    co_return http_error;
  }
}

asio::awaitable<void> Informer::fail(const char* verb, ApiError error) {
  healthy_ = false;
  sink_.count_error("kubernetes_api", error_type(error));
  if (hooks_.failed) hooks_.failed(*this);
  const Duration delay = backoff_.next(error.retry_after);
  log_api_failure(verb, resource_, error, delay);
  co_await sleep(delay);
}

void Informer::apply_object(const json& object, bool listing) {
  const std::string uid = object_uid(object);
  std::string rv = kube::resource_version(object);
  if (listing && !uid.empty()) {
    // A re-list returns every object again; unchanged ones need not reach the model twice.
    auto it = cache_.find(uid);
    if (it != cache_.end() && !rv.empty() && it->second.resource_version == rv) {
      it->second.listed = list_generation_;
      return;
    }
  }
  std::string error;
  const bool tracked = handler_.apply(object, error);
  if (!error.empty()) {
    log::warn("ignoring a Kubernetes object", {{"resource", resource_.display}, {"reason", error}});
    return;
  }
  if (tracked) {
    Tracked& t = cache_[uid];
    t.resource_version = std::move(rv);
    t.listed = list_generation_;
  } else if (cache_.erase(uid) > 0) {
    handler_.remove(uid);  // it was a tracked object and no longer is
  }
}

asio::awaitable<ApiError> Informer::list() {
  ++list_generation_;
  std::string continue_token;
  int expired_restarts = 0;
  // One buffer (and one parser) for every page of the list: a fresh ~1 MB string per page would
  // come from new memory each time and page-fault its way through the kernel again.
  std::string body;
  kube::ListReader reader;
  for (;;) {
    std::string target = resource_.collection_path() +
                         "?limit=" + std::to_string(settings_.list_page_size) + selectors();
    if (!continue_token.empty()) target += "&continue=" + url_encode(continue_token);
    std::shared_ptr<net::Exchange> ex;
    ApiError e = co_await open(target, "list", ex);
    if (stopped_) co_return ApiError{ErrorKind::cancelled, 0, "cancelled", std::nullopt};
    if (e.kind == ErrorKind::http && e.status == 410 && !continue_token.empty() &&
        expired_restarts < 3) {
      // The continue token expired between pages: start the list over.
      ++expired_restarts;
      continue_token.clear();
      ++list_generation_;  // what the abandoned pages returned counts as unseen
      continue;
    }
    if (e) co_return e;

    body.clear();
    e = co_await ex->read_body(body, settings_.max_list_bytes,
                               Clock::now() + settings_.request_timeout);
    current_.reset();
    if (stopped_) co_return ApiError{ErrorKind::cancelled, 0, "cancelled", std::nullopt};
    if (e) co_return e;

    // Each item reaches the model as soon as it is read, built only as far as its parser
    // reads it (list_reader.h); the page never exists as a whole DOM.
    kube::ListPage page;
    std::string error = reader.read(
        body, handler_.fields, [this](const json& item) { apply_object(item, true); }, page);
    if (!error.empty()) co_return ApiError{ErrorKind::parse, 200, std::move(error), std::nullopt};
    if (!page.resource_version.empty()) rv_ = std::move(page.resource_version);
    std::string next = std::move(page.continue_token);
    if (next.empty()) break;
    continue_token = std::move(next);
  }

  // Whatever was tracked and is not in the new list was deleted while we were not watching.
  for (auto it = cache_.begin(); it != cache_.end();) {
    if (it->second.listed != list_generation_) {
      const std::string uid = it->first;
      it = cache_.erase(it);
      handler_.remove(uid);
    } else {
      ++it;
    }
  }
  co_return ApiError{};
}

asio::awaitable<ApiError> Informer::watch(WatchEnd& end, bool& had_events) {
  const auto timeout_seconds = std::max<long long>(
      1, std::chrono::duration_cast<std::chrono::seconds>(settings_.watch_timeout).count());
  std::string target =
      resource_.collection_path() + "?watch=1&resourceVersion=" + url_encode(rv_) +
      "&allowWatchBookmarks=true&timeoutSeconds=" + std::to_string(timeout_seconds) + selectors();
  std::shared_ptr<net::Exchange> ex;
  ApiError e = co_await open(target, "watch", ex);
  if (stopped_) co_return ApiError{ErrorKind::cancelled, 0, "cancelled", std::nullopt};
  if (e.kind == ErrorKind::http && e.status == 410) {
    log::debug("Kubernetes watch expired (410); re-listing", {{"resource", resource_.display}});
    end = WatchEnd::relist;
    co_return ApiError{};
  }
  if (e) co_return e;
  // Only an open watch proves the resource fully readable (RBAC may allow list but not
  // watch), so this, not a successful list, ends the backoff.
  backoff_.reset();

  // The server ends the stream after timeoutSeconds; allow request_timeout on top before
  // calling a silent stream dead. The resync deadline also ends the watch.
  const Duration idle_limit = settings_.watch_timeout + settings_.request_timeout;
  std::string pending;
  std::size_t scanned = 0;
  for (;;) {
    const auto now = Clock::now();
    const auto deadline = std::min(now + idle_limit, resync_at_);
    e = co_await ex->read_some(pending, deadline);
    if (stopped_) co_return ApiError{ErrorKind::cancelled, 0, "cancelled", std::nullopt};
    if (e.kind == ErrorKind::timeout && Clock::now() >= resync_at_) {
      ex->cancel();
      end = WatchEnd::resync;
      co_return ApiError{};
    }
    if (e) {
      ex->cancel();
      co_return e;
    }
    // Split on '\n' ourselves: one event may span many reads, one read may hold many events.
    std::size_t start = 0;
    for (;;) {
      const auto nl = pending.find('\n', scanned);
      if (nl == std::string::npos) {
        scanned = pending.size();
        break;
      }
      bool relist = false;
      std::string_view line(pending.data() + start, nl - start);
      e = handle_line(line, relist);
      start = nl + 1;
      scanned = start;
      if (e || relist) {
        ex->cancel();
        if (!e) end = WatchEnd::relist;
        co_return e;
      }
      had_events = true;
    }
    pending.erase(0, start);
    scanned -= start;
    if (pending.size() > settings_.max_event_bytes) {
      ex->cancel();
      co_return ApiError{
          ErrorKind::parse, 200,
          "watch event exceeds max_event_bytes (" + std::to_string(settings_.max_event_bytes) + ")",
          std::nullopt};
    }
    if (ex->done()) {
      if (!pending.empty()) {
        bool relist = false;
        e = handle_line(pending, relist);
        if (e) co_return e;
        if (relist) end = WatchEnd::relist;
      }
      current_.reset();
      end = end == WatchEnd::relist ? WatchEnd::relist : WatchEnd::clean;
      co_return ApiError{};
    }
  }
}

ApiError Informer::handle_line(std::string_view line, bool& relist) {
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
  while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
  if (line.empty()) return ApiError{};
  if (line.size() > settings_.max_event_bytes) {
    return ApiError{
        ErrorKind::parse, 200,
        "watch event exceeds max_event_bytes (" + std::to_string(settings_.max_event_bytes) + ")",
        std::nullopt};
  }
  json event = json::parse(line, nullptr, false);
  if (event.is_discarded() || !event.is_object()) {
    return ApiError{ErrorKind::parse, 200, "watch stream sent a line that is not a JSON object",
                    std::nullopt};
  }
  auto type_it = event.find("type");
  auto object_it = event.find("object");
  if (type_it == event.end() || !type_it->is_string() || object_it == event.end() ||
      !object_it->is_object()) {
    return ApiError{ErrorKind::parse, 200, "watch event lacks a type or an object", std::nullopt};
  }
  const std::string type = type_it->get<std::string>();
  const json& object = *object_it;
  if (type == "ERROR") {
    int code = 0;
    if (auto c = object.find("code"); c != object.end() && c->is_number_integer()) {
      code = c->get<int>();
    }
    if (code == 410) {
      log::debug("Kubernetes watch expired (410); re-listing", {{"resource", resource_.display}});
      relist = true;
      return ApiError{};
    }
    std::string message = status_message(object.dump());
    return ApiError{ErrorKind::http, code, "watch ERROR event: " + message, std::nullopt};
  }
  const std::string rv = kube::resource_version(object);
  if (type == "ADDED" || type == "MODIFIED") {
    apply_object(object, false);
  } else if (type == "DELETED") {
    const std::string uid = object_uid(object);
    if (!uid.empty() && cache_.erase(uid) > 0) handler_.remove(uid);
  } else if (type != "BOOKMARK") {
    return ApiError{ErrorKind::parse, 200,
                    "unknown watch event type \"" + type.substr(0, 40) + "\"", std::nullopt};
  }
  if (!rv.empty()) rv_ = rv;
  return ApiError{};
}

}  // namespace mx::kube
