// The exporter's configuration: one YAML file (config/modal-exporter.yaml documents every key)
// overridden by command-line flags. Every default lives here, in one place.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/duration.h"
#include "common/log.h"
#include "config/flags.h"

namespace mx {

using namespace std::chrono_literals;

struct WebConfig {
  std::string listen_address = ":8081";
  std::string telemetry_path = "/metrics";
  std::string config_file;       // --web.config.file: TLS, basic auth, ... (config/web_config.h)
  Duration header_timeout = 5s;  // TLS handshake + request line + headers, from accept/first byte
  Duration read_timeout = 10s;   // the request body, once the headers are in
  Duration write_timeout = 30s;  // a slow reader is dropped after this
  Duration idle_timeout = 60s;   // keep-alive connection with no new request
  // Open connections; capped by the fd limit. When full, the connection idle or incomplete for
  // the longest is closed to admit the newcomer.
  int max_connections = 10000;
  std::size_t max_request_bytes = 8192;  // header + body cap (431 / 413 beyond)
  int gzip_level = 6;                    // 1..9, applied once per snapshot
};

struct LogConfig {
  LogLevel level = LogLevel::info;
  LogFormat format = LogFormat::logfmt;
};

struct BackoffConfig {
  Duration initial = 1s;
  Duration max = 5min;
};

struct KubernetesConfig {
  bool enabled = true;
  std::string kubeconfig;               // empty: $KUBECONFIG, else in-cluster
  std::vector<std::string> namespaces;  // empty: all namespaces
  Duration resync_interval = 10min;     // full re-list as a safety net
  Duration watch_timeout = 5min;        // timeoutSeconds of each WATCH
  Duration request_timeout = 30s;       // connect + LIST page / response headers
  int list_page_size = 500;
  std::size_t max_event_bytes = 16 * 1024 * 1024;  // one watch line; larger is an error
  std::string pod_label_selector;                  // narrows the offloaded Pod LIST on the server
  std::string pod_field_selector;
  std::string operator_container = "modal-operator";
  Duration operator_pod_interval = 30s;   // GET of the operator's own Pod
  bool watch_events = true;               // Warning Events -> modal_operator_errors_total
  Duration token_reload_interval = 1min;  // projected service-account tokens rotate
};

struct ModalConfig {
  bool enabled = true;
  // One URL or a comma-separated list tried in order (failover on UNAVAILABLE / connection
  // failure), like Modal's clients. MODAL_SERVER_URL overrides.
  std::string server_url = "https://api.modal.com:443";
  std::string environment = "main";
  std::string token_id_file;      // empty: env MODAL_TOKEN_ID
  std::string token_secret_file;  // empty: env MODAL_TOKEN_SECRET
  int client_type = 9;
  std::string client_version = "1.0.0";
  // x-modal-libmodal-version; empty: "modal-exporter/<version>".
  std::string libmodal_version;
  // Budget of the per-object calls (FunctionGetCurrentStats, TaskGetInfo), spread evenly.
  double max_calls_per_second = 5;
  Duration call_timeout = 10s;
  Duration apps_interval = 15s;
  Duration tasks_interval = 15s;
  Duration stats_interval = 15s;
  Duration billing_interval = 5min;
  Duration rates_interval = 1h;
  Duration environments_interval = 60s;  // EnvironmentList; summaries every billing_interval
};

struct TelemetryConfig {
  bool enabled = true;
  Duration interval = 10s;
  Duration timeout = 5s;
  std::size_t max_body_bytes = 16 * 1024 * 1024;
};

struct UpstreamConfig {
  bool enabled = false;
  std::string url;  // e.g. http://127.0.0.1:8082/metrics
  Duration interval = 15s;
  Duration timeout = 5s;
  std::size_t max_body_bytes = 16 * 1024 * 1024;
};

struct LimitsConfig {
  std::size_t max_jobs = 100000;  // beyond: modal_exporter_dropped_jobs_total{reason="max_jobs"}
};

struct ShardConfig {
  int shard = 0;
  int total_shards = 1;
};

// USD per hour. Keys of gpu_per_hour are GPU types as in specs ("A100-80GB"), matched
// case-insensitively. Defaults: Modal's published prices (docs/modal.md).
struct PriceConfig {
  std::map<std::string, double> gpu_per_hour = {
      {"B200", 6.2496},      {"H200", 4.5396}, {"H100", 3.9492}, {"A100-80GB", 2.4984},
      {"A100-40GB", 2.0988}, {"A100", 2.0988}, {"L40S", 1.9512}, {"A10G", 1.1016},
      {"L4", 0.7992},        {"T4", 0.5904}};
  double cpu_core_per_hour = 0.04716;
  double memory_gib_per_hour = 0.007992;
};

struct Config {
  WebConfig web;
  LogConfig log;
  std::string state_file;  // empty: counted UIDs are not persisted
  BackoffConfig backoff;
  KubernetesConfig kubernetes;
  ModalConfig modal;
  TelemetryConfig telemetry;
  UpstreamConfig upstream;
  LimitsConfig limits;
  ShardConfig shard;
  PriceConfig prices;
};

// A config error names the key path and the line of the YAML file it came from.
struct ConfigError {
  std::string message;
};

// Loads and validates a YAML document (the keys and their checks: config.cpp). Throws
// ConfigError.
Config load_config_file(const std::string& path);
Config parse_config(const std::string& yaml_text, const std::string& source_name);

// Every key of the YAML file, in file order: its dotted path, one line of doc, and its value in
// `config` spelled as in YAML (for a default Config, the default).
struct ConfigKey {
  std::string path;
  std::string doc;
  std::string value;
};
std::vector<ConfigKey> config_keys(const Config& config = {});

// YAML file (if any) + flags + environment (KUBECONFIG, MODAL_SERVER_URL, checked like
// sources.modal.server_url). Throws ConfigError.
Config resolve_config(const Flags& flags);

}  // namespace mx
