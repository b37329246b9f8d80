#include "config/config.h"

#include <cstdlib>

#include "config/modal_server_urls.h"
#include "config/schema.h"
#include "config/values.h"

namespace mx {
namespace {

std::string http_url_error(const std::string& url) {
  if (url.starts_with("http://") || url.starts_with("https://")) return "";
  return "must start with http:// or https://";
}

std::string modal_server_url_error(const std::string& list) {
  std::string error;
  if (!parse_modal_server_urls(list, &error)) return error;
  return "";
}

// Every key of the file, bound to `c`. The defaults are the members' initialisers (config.h).
std::vector<schema::Key> keys(Config& c) {
  using namespace schema;
  auto& w = c.web;
  auto& k = c.kubernetes;
  auto& m = c.modal;
  auto& t = c.telemetry;
  auto& u = c.upstream;
  auto& p = c.prices;
  const auto path_check = [](const std::string& v) { return telemetry_path_error(v); };
  // One row per key; rows of the same type look alike by design (duplicates lists them).
  return {
      text("web.listen_address", w.listen_address, "HOST:PORT to serve on"),
      text("web.telemetry_path", w.telemetry_path, "path of the metrics endpoint", path_check),
      text("web.config_file", w.config_file, "exporter-toolkit web config (TLS, auth, ...)"),
      duration("web.header_timeout", w.header_timeout, "TLS handshake and request headers"),
      duration("web.read_timeout", w.read_timeout, "request body, once the headers are in"),
      duration("web.write_timeout", w.write_timeout, "a slow reader is dropped after this"),
      duration("web.idle_timeout", w.idle_timeout, "keep-alive connection with no request"),
      integer("web.max_connections", w.max_connections, 1, 1000000, "open connections"),
      integer("web.max_request_bytes", w.max_request_bytes, 256, 1 << 20,
              "request line + headers + body"),
      integer("web.gzip_level", w.gzip_level, 1, 9, "zlib level of gzip responses"),
      choice("log.level", c.log.level, log_level_names(), "least severe level logged"),
      choice("log.format", c.log.format, log_format_names(), "log line format"),
      text("state_file", c.state_file, "counted job UIDs kept across restarts; empty: none"),
      duration("backoff.initial", c.backoff.initial, "first retry delay after an error"),
      duration("backoff.max", c.backoff.max, "longest retry delay"),
      boolean("sources.kubernetes.enabled", k.enabled, "watch the Kubernetes API"),
      text("sources.kubernetes.kubeconfig", k.kubeconfig, "empty: $KUBECONFIG, else in-cluster"),
      list("sources.kubernetes.namespaces", k.namespaces, "namespaces watched; empty: all"),
      duration("sources.kubernetes.resync_interval", k.resync_interval, "full re-list"),
      duration("sources.kubernetes.watch_timeout", k.watch_timeout, "timeoutSeconds of a WATCH"),
      duration("sources.kubernetes.request_timeout", k.request_timeout,
               "connect + LIST page / response headers"),
      integer("sources.kubernetes.list_page_size", k.list_page_size, 1, 100000,
              "objects per LIST page"),
      integer("sources.kubernetes.max_event_bytes", k.max_event_bytes, 1024, 1LL << 32,
              "largest watch event line"),
      text("sources.kubernetes.pod_label_selector", k.pod_label_selector,
           "label selector of the Pod LIST/WATCH"),
      text("sources.kubernetes.pod_field_selector", k.pod_field_selector,
           "field selector of the Pod LIST/WATCH"),
      text("sources.kubernetes.operator_container", k.operator_container,
           "the operator Pod's container whose restarts are exported"),
      duration("sources.kubernetes.operator_pod_interval", k.operator_pod_interval,
               "how often the operator Pod is read"),
      boolean("sources.kubernetes.watch_events", k.watch_events,
              "count Warning Events about the operator's objects"),
      duration("sources.kubernetes.token_reload_interval", k.token_reload_interval,
               "how often the service-account token is re-read"),
      boolean("sources.modal.enabled", m.enabled, "poll Modal's control plane"),
      text("sources.modal.server_url", m.server_url,
           "URL or comma-separated URLs tried in order; env MODAL_SERVER_URL overrides",
           modal_server_url_error),
      text("sources.modal.environment", m.environment, "Modal environment"),
      text("sources.modal.token_id_file", m.token_id_file, "empty: env MODAL_TOKEN_ID"),
      text("sources.modal.token_secret_file", m.token_secret_file, "empty: env MODAL_TOKEN_SECRET"),
      integer("sources.modal.client_type", m.client_type, 0, 1000, "x-modal-client-type"),
      text("sources.modal.client_version", m.client_version, "x-modal-client-version"),
      text("sources.modal.libmodal_version", m.libmodal_version,
           "x-modal-libmodal-version; empty: modal-exporter/<version>"),
      number("sources.modal.max_calls_per_second", m.max_calls_per_second, 0.01, 1000,
             "budget of the per-object calls"),
      duration("sources.modal.call_timeout", m.call_timeout, "deadline of every gRPC call"),
      duration("sources.modal.apps_interval", m.apps_interval, "AppList period"),
      duration("sources.modal.tasks_interval", m.tasks_interval, "TaskList period"),
      duration("sources.modal.stats_interval", m.stats_interval, "per-function stats period"),
      duration("sources.modal.billing_interval", m.billing_interval, "billing report period"),
      duration("sources.modal.rates_interval", m.rates_interval, "billing rates period"),
      duration("sources.modal.environments_interval", m.environments_interval,
               "EnvironmentList period"),
      boolean("sources.telemetry.enabled", t.enabled, "scrape the jobs' telemetry URLs"),
      duration("sources.telemetry.interval", t.interval, "scrape period"),
      duration("sources.telemetry.timeout", t.timeout, "scrape deadline"),
      integer("sources.telemetry.max_body_bytes", t.max_body_bytes, 1024, 1LL << 32,
              "largest scraped body"),
      boolean("sources.upstream.enabled", u.enabled, "scrape the operator's own /metrics"),
      text("sources.upstream.url", u.url, "the operator's metrics URL"),
      duration("sources.upstream.interval", u.interval, "scrape period"),
      duration("sources.upstream.timeout", u.timeout, "scrape deadline"),
      integer("sources.upstream.max_body_bytes", u.max_body_bytes, 1024, 1LL << 32,
              "largest scraped body"),
      integer("limits.max_jobs", c.limits.max_jobs, 1, 100000000, "jobs beyond are dropped"),
      integer("shard.shard", c.shard.shard, 0, 999, "this replica's shard"),
      integer("shard.total_shards", c.shard.total_shards, 1, 1000, "number of shards"),
      mapping(
          "prices.gpu_per_hour", "USD/hour by GPU type, over the defaults",
          [&p](const std::string& gpu, const Value& price) {
            number(price.key(), p.gpu_per_hour[gpu], 0, 1e9, "").read(price);
          },
          [&p] {
            std::string s;
            for (const auto& [gpu, price] : p.gpu_per_hour) {
              s += (s.empty() ? "" : ", ") + gpu + ": " + std::to_string(price);
            }
            return "{" + s + "}";
          }),
      number("prices.cpu_core_per_hour", p.cpu_core_per_hour, 0, 1e9, "USD per core-hour"),
      number("prices.memory_gib_per_hour", p.memory_gib_per_hour, 0, 1e9, "USD per GiB-hour"),
  };
}

// Checks across keys, once every key is read.
void check(const schema::Document& doc, const Config& c) {
  if (c.backoff.max < c.backoff.initial) {
    doc.fail("backoff.max", "must not be below backoff.initial");
  }
  if (c.upstream.enabled && !http_url_error(c.upstream.url).empty()) {
    doc.fail("sources.upstream.url", "an enabled upstream needs an http:// or https:// URL");
  }
  if (const auto error = shard_error(c.shard.shard, c.shard.total_shards); !error.empty()) {
    doc.fail("shard.shard", error);
  }
}

std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  return std::string(v);
}

}  // namespace

Config parse_config(const std::string& yaml_text, const std::string& source_name) {
  const schema::Document doc(yaml_text, source_name);
  Config c;
  doc.read(keys(c));
  check(doc, c);
  return c;
}

std::vector<ConfigKey> config_keys(const Config& config) {
  Config c = config;
  std::vector<ConfigKey> out;
  for (const auto& key : keys(c)) out.push_back({key.path, key.doc, key.show()});
  return out;
}

Config load_config_file(const std::string& path) {
  return parse_config(schema::read_file(path, "config file"), path);
}

Config resolve_config(const Flags& flags) {
  Config c = flags.config_path ? load_config_file(*flags.config_path) : Config{};
  if (flags.listen_address) c.web.listen_address = *flags.listen_address;
  if (flags.telemetry_path) c.web.telemetry_path = *flags.telemetry_path;
  if (flags.web_config_file) c.web.config_file = *flags.web_config_file;
  if (flags.state_file) c.state_file = *flags.state_file;
  if (flags.log_level) c.log.level = *flags.log_level;
  if (flags.log_format) c.log.format = *flags.log_format;
  if (flags.shard) c.shard.shard = *flags.shard;
  if (flags.total_shards) c.shard.total_shards = *flags.total_shards;
  if (flags.shard_from_pod_name) {
    if (flags.shard)
      throw ConfigError{"flags --shard and --shard.from-pod-name exclude each other"};
    auto pod = env("POD_NAME");
    if (!pod || pod->empty()) pod = env("HOSTNAME");
    if (!pod || pod->empty()) {
      throw ConfigError{"flag --shard.from-pod-name: neither POD_NAME nor HOSTNAME is set"};
    }
    const auto ordinal = pod_ordinal(*pod);
    if (!ordinal) {
      throw ConfigError{"flag --shard.from-pod-name: pod name \"" + *pod +
                        "\" does not end in -<ordinal> (0..999)"};
    }
    c.shard.shard = *ordinal;
  }
  if (const auto error = shard_error(c.shard.shard, c.shard.total_shards); !error.empty()) {
    throw ConfigError{error};
  }
  // kubeconfig: flag, then the file's key, then $KUBECONFIG; none means in-cluster.
  if (flags.kubeconfig) {
    c.kubernetes.kubeconfig = *flags.kubeconfig;
  } else if (c.kubernetes.kubeconfig.empty()) {
    if (auto k = env("KUBECONFIG")) c.kubernetes.kubeconfig = *k;
  }
  // Like Modal's SDKs, MODAL_SERVER_URL points the client elsewhere.
  if (auto url = env("MODAL_SERVER_URL")) {
    if (const auto error = modal_server_url_error(*url); !error.empty()) {
      throw ConfigError{"environment variable MODAL_SERVER_URL: " + error};
    }
    c.modal.server_url = *url;
  }
  return c;
}

}  // namespace mx
