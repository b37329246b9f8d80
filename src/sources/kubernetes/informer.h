// One informer per (resource, namespace): paginated LIST, then WATCH from the list's
// resourceVersion, re-listing on 410 Gone, on errors and every resync_interval. It keeps the
// set of tracked UIDs so that a re-list reports objects that vanished in between as deleted.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include "common/backoff.h"
#include "config/config.h"
#include "model/sinks.h"
#include "sources/kubernetes/api.h"
#include "sources/kubernetes/list_reader.h"

namespace mx::kube {

// How the objects of one resource reach the sink.
struct InformerHandler {
  // Parses and forwards one object. Returns true when the object is tracked (its deletion must
  // be reported later); false when it is not of interest or rejected (`error` says why).
  std::function<bool(const nlohmann::json& object, std::string& error)> apply;
  // A tracked object is gone (deleted, vanished from a re-list, or no longer of interest).
  std::function<void(const std::string& uid)> remove;
  // The members `apply` reads (parse.h); LIST pages build only these. Empty: everything.
  FieldFilter fields;
};

struct InformerSettings {
  int list_page_size = 500;
  Duration request_timeout = std::chrono::seconds(30);
  Duration watch_timeout = std::chrono::minutes(5);
  Duration resync_interval = std::chrono::minutes(10);
  std::size_t max_event_bytes = 16 * 1024 * 1024;
  std::size_t max_list_bytes = 256 * 1024 * 1024;
  BackoffConfig backoff;

  static InformerSettings from(const KubernetesConfig& config, const BackoffConfig& backoff);
};

class Informer : public std::enable_shared_from_this<Informer> {
 public:
  struct Hooks {
    std::function<void(Informer&, double list_seconds)> listed;  // after each successful (re-)list
    std::function<void(Informer&)> failed;                       // after each error
  };

  Informer(std::shared_ptr<ApiSession> client, ResourceRef resource, InformerHandler handler,
           InformerSettings settings, SourceSink& sink, Hooks hooks);

  void start();
  void stop();

  const ResourceRef& resource() const { return resource_; }
  bool healthy() const { return healthy_; }
  bool listed_once() const { return listed_once_; }
  std::size_t tracked() const { return cache_.size(); }
  const std::string& resource_version() const { return rv_; }

 private:
  using Clock = std::chrono::steady_clock;
  enum class WatchEnd { clean, relist, resync };

  static asio::awaitable<void> run(std::shared_ptr<Informer> self);
  asio::awaitable<void> cycle();
  asio::awaitable<ApiError> list();
  asio::awaitable<ApiError> watch(WatchEnd& end, bool& had_events);
  asio::awaitable<ApiError> open(std::string target, const char* verb,
                                 std::shared_ptr<net::Exchange>& out);
  asio::awaitable<void> fail(const char* verb, ApiError error);
  asio::awaitable<void> sleep(Duration d);

  // `listing`: the object came in a LIST page (else a watch event).
  void apply_object(const nlohmann::json& object, bool listing);
  // Handles one watch line; returns an error (kind parse / http) or sets `end` to relist.
  ApiError handle_line(std::string_view line, bool& relist);
  std::string selectors() const;

  std::shared_ptr<ApiSession> client_;
  ResourceRef resource_;
  InformerHandler handler_;
  InformerSettings settings_;
  SourceSink& sink_;
  Hooks hooks_;
  Backoff backoff_;
  asio::steady_timer timer_;
  std::shared_ptr<net::Exchange> current_;

  struct Tracked {
    std::string resource_version;
    std::uint64_t listed = 0;  // the list_generation_ that last returned it
  };
  // Tracked uid -> what the last LIST or event said. A (re-)list marks what it returns with a
  // new generation instead of collecting the UIDs it saw in a second set.
  std::unordered_map<std::string, Tracked> cache_;
  std::uint64_t list_generation_ = 0;
  std::string rv_;
  Clock::time_point resync_at_{};
  bool stopped_ = false;
  bool healthy_ = false;
  bool listed_once_ = false;
};

}  // namespace mx::kube
