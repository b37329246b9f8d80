#include "config/config.h"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string_view>

namespace mx {
namespace {

// Walks the YAML tree against the schema; every error names the dotted key and its line.
class Reader {
 public:
  explicit Reader(std::string source) : source_(std::move(source)) {}

  [[noreturn]] void fail(const YAML::Node& node, const std::string& key,
                         const std::string& what) const {
    std::ostringstream out;
    out << source_ << ": key \"" << key << "\"";
    if (node.IsDefined() && node.Mark().line >= 0) out << " (line " << node.Mark().line + 1 << ")";
    out << ": " << what;
    throw ConfigError{out.str()};
  }

  // Checks that `node` is a mapping holding only `allowed` keys; a null node (empty section) is ok.
  void expect_map(const YAML::Node& node, const std::string& path,
                  std::initializer_list<std::string_view> allowed) const {
    if (node.IsNull()) return;
    if (!node.IsMap()) fail(node, path.empty() ? "<top level>" : path, "expected a mapping");
    for (const auto& entry : node) {
      const auto key = entry.first.Scalar();
      bool known = false;
      for (auto a : allowed) known = known || a == key;
      if (!known) {
        std::string list;
        for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
        fail(entry.first, join(path, key), "unknown key (known keys here: " + list + ")");
      }
    }
  }

  static std::string join(const std::string& path, std::string_view key) {
    return path.empty() ? std::string(key) : path + "." + std::string(key);
  }

  const YAML::Node* child(const YAML::Node& parent, const char* key, YAML::Node& holder) const {
    if (!parent.IsMap()) return nullptr;
    const YAML::Node value = parent[key];  // a missing key gives an invalid node: check first
    if (!value.IsDefined() || value.IsNull()) return nullptr;
    holder.reset(value);
    return &holder;
  }

  void scalar(const YAML::Node& parent, const std::string& path, const char* key,
              std::string& out) const {
    YAML::Node n;
    if (!child(parent, key, n)) return;
    if (!n.IsScalar()) fail(n, join(path, key), "expected a string");
    out = n.Scalar();
  }

  void boolean(const YAML::Node& parent, const std::string& path, const char* key,
               bool& out) const {
    YAML::Node n;
    if (!child(parent, key, n)) return;
    const std::string v = n.IsScalar() ? n.Scalar() : "";
    if (v == "true") {
      out = true;
    } else if (v == "false") {
      out = false;
    } else {
      fail(n, join(path, key), "expected true or false, got \"" + v + "\"");
    }
  }

  void duration(const YAML::Node& parent, const std::string& path, const char* key, Duration& out,
                bool allow_zero = false) const {
    YAML::Node n;
    if (!child(parent, key, n)) return;
    const std::string v = n.IsScalar() ? n.Scalar() : "";
    if (!v.empty() && v[0] == '-') fail(n, join(path, key), "negative duration \"" + v + "\"");
    auto d = parse_duration(v);
    if (!d) {
      fail(n, join(path, key),
           "malformed duration \"" + v + "\" (expected e.g. 500ms, 15s, 5m, 1h30m)");
    }
    if (d->count() == 0 && !allow_zero) fail(n, join(path, key), "duration must be above 0");
    out = *d;
  }

  template <typename Int>
  void integer(const YAML::Node& parent, const std::string& path, const char* key, Int& out,
               long long min, long long max) const {
    YAML::Node n;
    if (!child(parent, key, n)) return;
    const std::string v = n.IsScalar() ? n.Scalar() : "";
    char* end = nullptr;
    errno = 0;
    const long long parsed = std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0' || errno == ERANGE) {
      fail(n, join(path, key), "expected an integer, got \"" + v + "\"");
    }
    if (parsed < min || parsed > max) {
      fail(n, join(path, key),
           "value " + v + " out of range [" + std::to_string(min) + ", " + std::to_string(max) +
               "]");
    }
    out = static_cast<Int>(parsed);
  }

  void number(const YAML::Node& parent, const std::string& path, const char* key,
              double& out) const {
    YAML::Node n;
    if (!child(parent, key, n)) return;
    number_node(n, join(path, key), out);
  }

  void number_node(const YAML::Node& n, const std::string& key, double& out) const {
    const std::string v = n.IsScalar() ? n.Scalar() : "";
    char* end = nullptr;
    const double parsed = std::strtod(v.c_str(), &end);
    if (v.empty() || *end != '\0' || !(parsed >= 0) || parsed > 1e9) {
      fail(n, key, "expected a non-negative number, got \"" + v + "\"");
    }
    out = parsed;
  }

  void string_list(const YAML::Node& parent, const std::string& path, const char* key,
                   std::vector<std::string>& out) const {
    YAML::Node n;
    if (!child(parent, key, n)) return;
    if (!n.IsSequence()) fail(n, join(path, key), "expected a list of strings");
    out.clear();
    for (const auto& item : n) {
      if (!item.IsScalar() || item.Scalar().empty()) {
        fail(item, join(path, key), "expected a non-empty string in the list");
      }
      out.push_back(item.Scalar());
    }
  }

 private:
  std::string source_;
};

void read_web(const Reader& r, const YAML::Node& n, WebConfig& c) {
  const std::string p = "web";
  r.expect_map(
      n, p,
      {"listen_address", "telemetry_path", "config_file", "header_timeout", "read_timeout",
       "write_timeout", "idle_timeout", "max_connections", "max_request_bytes", "gzip_level"});
  r.scalar(n, p, "config_file", c.config_file);
  r.duration(n, p, "header_timeout", c.header_timeout);
  r.scalar(n, p, "listen_address", c.listen_address);
  r.scalar(n, p, "telemetry_path", c.telemetry_path);
  r.duration(n, p, "read_timeout", c.read_timeout);
  r.duration(n, p, "write_timeout", c.write_timeout);
  r.duration(n, p, "idle_timeout", c.idle_timeout);
  r.integer(n, p, "max_connections", c.max_connections, 1, 1000000);
  r.integer(n, p, "max_request_bytes", c.max_request_bytes, 256, 1 << 20);
  r.integer(n, p, "gzip_level", c.gzip_level, 1, 9);
  if (c.telemetry_path.empty() || c.telemetry_path[0] != '/') {
    r.fail(n["telemetry_path"], "web.telemetry_path", "must start with '/'");
  }
}

void read_log(const Reader& r, const YAML::Node& n, LogConfig& c) {
  r.expect_map(n, "log", {"level", "format"});
  std::string level(to_string(c.level)), format(to_string(c.format));
  r.scalar(n, "log", "level", level);
  r.scalar(n, "log", "format", format);
  if (auto l = parse_log_level(level)) {
    c.level = *l;
  } else {
    r.fail(n["level"], "log.level", "expected debug, info, warn or error, got \"" + level + "\"");
  }
  if (auto f = parse_log_format(format)) {
    c.format = *f;
  } else {
    r.fail(n["format"], "log.format", "expected logfmt or json, got \"" + format + "\"");
  }
}

void read_kubernetes(const Reader& r, const YAML::Node& n, KubernetesConfig& c) {
  const std::string p = "sources.kubernetes";
  r.expect_map(
      n, p,
      {"enabled", "kubeconfig", "namespaces", "resync_interval", "watch_timeout", "request_timeout",
       "list_page_size", "max_event_bytes", "pod_label_selector", "pod_field_selector",
       "operator_container", "operator_pod_interval", "watch_events", "token_reload_interval"});
  r.boolean(n, p, "enabled", c.enabled);
  r.scalar(n, p, "kubeconfig", c.kubeconfig);
  r.string_list(n, p, "namespaces", c.namespaces);
  r.duration(n, p, "resync_interval", c.resync_interval);
  r.duration(n, p, "watch_timeout", c.watch_timeout);
  r.duration(n, p, "request_timeout", c.request_timeout);
  r.integer(n, p, "list_page_size", c.list_page_size, 1, 100000);
  r.integer(n, p, "max_event_bytes", c.max_event_bytes, 1024, 1LL << 32);
  r.scalar(n, p, "pod_label_selector", c.pod_label_selector);
  r.scalar(n, p, "pod_field_selector", c.pod_field_selector);
  r.scalar(n, p, "operator_container", c.operator_container);
  r.duration(n, p, "operator_pod_interval", c.operator_pod_interval);
  r.boolean(n, p, "watch_events", c.watch_events);
  r.duration(n, p, "token_reload_interval", c.token_reload_interval);
}

void read_modal(const Reader& r, const YAML::Node& n, ModalConfig& c) {
  const std::string p = "sources.modal";
  r.expect_map(
      n, p,
      {"enabled", "server_url", "environment", "token_id_file", "token_secret_file", "client_type",
       "client_version", "libmodal_version", "max_calls_per_second", "call_timeout",
       "apps_interval", "tasks_interval", "stats_interval", "billing_interval", "rates_interval"});
  r.boolean(n, p, "enabled", c.enabled);
  r.scalar(n, p, "server_url", c.server_url);
  r.scalar(n, p, "environment", c.environment);
  r.scalar(n, p, "token_id_file", c.token_id_file);
  r.scalar(n, p, "token_secret_file", c.token_secret_file);
  r.integer(n, p, "client_type", c.client_type, 0, 1000);
  r.scalar(n, p, "client_version", c.client_version);
  r.scalar(n, p, "libmodal_version", c.libmodal_version);
  r.number(n, p, "max_calls_per_second", c.max_calls_per_second);
  if (!(c.max_calls_per_second >= 0.01 && c.max_calls_per_second <= 1000)) {
    r.fail(n["max_calls_per_second"], p + ".max_calls_per_second", "must be within 0.01..1000");
  }
  r.duration(n, p, "call_timeout", c.call_timeout);
  r.duration(n, p, "apps_interval", c.apps_interval);
  r.duration(n, p, "tasks_interval", c.tasks_interval);
  r.duration(n, p, "stats_interval", c.stats_interval);
  r.duration(n, p, "billing_interval", c.billing_interval);
  r.duration(n, p, "rates_interval", c.rates_interval);
  if (c.server_url.rfind("http://", 0) != 0 && c.server_url.rfind("https://", 0) != 0) {
    r.fail(n["server_url"], p + ".server_url", "must start with http:// or https://");
  }
}

void read_scrape_source(const Reader& r, const YAML::Node& n, const std::string& p, bool& enabled,
                        std::string* url, Duration& interval, Duration& timeout,
                        std::size_t& max_body) {
  if (url) {
    r.expect_map(n, p, {"enabled", "url", "interval", "timeout", "max_body_bytes"});
    r.scalar(n, p, "url", *url);
  } else {
    r.expect_map(n, p, {"enabled", "interval", "timeout", "max_body_bytes"});
  }
  r.boolean(n, p, "enabled", enabled);
  r.duration(n, p, "interval", interval);
  r.duration(n, p, "timeout", timeout);
  r.integer(n, p, "max_body_bytes", max_body, 1024, 1LL << 32);
}

void read_prices(const Reader& r, const YAML::Node& n, PriceConfig& c) {
  r.expect_map(n, "prices", {"gpu_per_hour", "cpu_core_per_hour", "memory_gib_per_hour"});
  YAML::Node gpus;
  if (const auto* g = r.child(n, "gpu_per_hour", gpus)) {
    if (!g->IsMap())
      r.fail(*g, "prices.gpu_per_hour", "expected a mapping of GPU type to USD/hour");
    for (const auto& entry : *g) {
      double v = 0;
      r.number_node(entry.second, "prices.gpu_per_hour." + entry.first.Scalar(), v);
      c.gpu_per_hour[entry.first.Scalar()] = v;
    }
  }
  r.number(n, "prices", "cpu_core_per_hour", c.cpu_core_per_hour);
  r.number(n, "prices", "memory_gib_per_hour", c.memory_gib_per_hour);
}

std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  return std::string(v);
}

}  // namespace

Config parse_config(const std::string& yaml_text, const std::string& source_name) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw ConfigError{source_name + ": invalid YAML at line " + std::to_string(e.mark.line + 1) +
                      ": " + e.msg};
  }
  Config c;
  Reader r(source_name);
  if (root.IsNull()) return c;
  r.expect_map(root, "",
               {"web", "log", "state_file", "backoff", "sources", "limits", "shard", "prices"});
  YAML::Node n;
  if (r.child(root, "web", n)) read_web(r, n, c.web);
  if (r.child(root, "log", n)) read_log(r, n, c.log);
  r.scalar(root, "", "state_file", c.state_file);
  if (r.child(root, "backoff", n)) {
    r.expect_map(n, "backoff", {"initial", "max"});
    r.duration(n, "backoff", "initial", c.backoff.initial);
    r.duration(n, "backoff", "max", c.backoff.max);
    if (c.backoff.max < c.backoff.initial) {
      r.fail(n["max"], "backoff.max", "must not be below backoff.initial");
    }
  }
  if (r.child(root, "sources", n)) {
    r.expect_map(n, "sources", {"kubernetes", "modal", "telemetry", "upstream"});
    YAML::Node s;
    if (r.child(n, "kubernetes", s)) read_kubernetes(r, s, c.kubernetes);
    if (r.child(n, "modal", s)) read_modal(r, s, c.modal);
    if (r.child(n, "telemetry", s)) {
      auto& t = c.telemetry;
      read_scrape_source(r, s, "sources.telemetry", t.enabled, nullptr, t.interval, t.timeout,
                         t.max_body_bytes);
    }
    if (r.child(n, "upstream", s)) {
      auto& u = c.upstream;
      read_scrape_source(r, s, "sources.upstream", u.enabled, &u.url, u.interval, u.timeout,
                         u.max_body_bytes);
      if (u.enabled && u.url.rfind("http://", 0) != 0 && u.url.rfind("https://", 0) != 0) {
        r.fail(s["url"].IsDefined() ? s["url"] : s, "sources.upstream.url",
               "an enabled upstream needs an http:// or https:// URL");
      }
    }
  }
  if (r.child(root, "limits", n)) {
    r.expect_map(n, "limits", {"max_jobs"});
    r.integer(n, "limits", "max_jobs", c.limits.max_jobs, 1, 100000000);
  }
  if (r.child(root, "shard", n)) {
    r.expect_map(n, "shard", {"shard", "total_shards"});
    r.integer(n, "shard", "total_shards", c.shard.total_shards, 1, 1000);
    r.integer(n, "shard", "shard", c.shard.shard, 0, 999);
    if (c.shard.shard >= c.shard.total_shards) {
      r.fail(n["shard"], "shard.shard", "must be below shard.total_shards");
    }
  }
  if (r.child(root, "prices", n)) read_prices(r, n, c.prices);
  return c;
}

Config load_config_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError{"cannot read config file " + path};
  std::ostringstream text;
  text << in.rdbuf();
  return parse_config(text.str(), path);
}

std::string flags_usage() {
  return R"(usage: modal-exporter [flags]

Derives the Modal operator's Prometheus metrics from the Kubernetes API and Modal's control plane.

  --config PATH                 YAML configuration file (see config/modal-exporter.yaml)
  --web.listen-address ADDR     address to serve metrics on (default ":8081")
  --web.telemetry-path PATH     path of the metrics endpoint (default "/metrics")
  --web.config.file PATH        TLS / basic auth / rate limit config, exporter-toolkit's format
  --kubeconfig PATH             kubeconfig to use (default: $KUBECONFIG, else in-cluster)
  --state.file PATH             file keeping counted job UIDs across restarts
  --log.level LEVEL             debug, info, warn or error (default info)
  --log.format FORMAT           logfmt or json (default logfmt)
  --shard N                     this replica's shard (default 0)
  --total-shards M              number of shards (default 1)
  --shard.from-pod-name         shard = trailing ordinal of $POD_NAME (else $HOSTNAME), as a
                                StatefulSet names its pods ("modal-exporter-2" -> 2)
  --version                     print the version and exit
  --help                        print this help and exit

Flags override the configuration file. SIGHUP reloads the file; SIGTERM/SIGINT stop gracefully.
)";
}

Flags parse_flags(int argc, const char* const* argv) {
  Flags f;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--version" || arg == "-version") {
      f.show_version = true;
      continue;
    }
    if (arg == "--help" || arg == "-h" || arg == "-help") {
      f.show_help = true;
      continue;
    }
    if (arg == "--shard.from-pod-name") {
      f.shard_from_pod_name = true;
      continue;
    }
    std::string name = arg, value;
    bool has_value = false;
    if (auto eq = arg.find('='); eq != std::string::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      has_value = true;
    }
    auto take = [&]() -> std::string {
      if (has_value) return value;
      if (i + 1 >= argc) throw ConfigError{"flag " + name + " needs a value"};
      return argv[++i];
    };
    auto take_int = [&](int min) {
      const std::string v = take();
      char* end = nullptr;
      const long n = std::strtol(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || n < min || n > 1000) {
        throw ConfigError{"flag " + name + ": expected an integer >= " + std::to_string(min) +
                          ", got \"" + v + "\""};
      }
      return static_cast<int>(n);
    };
    if (name == "--config") {
      f.config_path = take();
    } else if (name == "--web.listen-address") {
      f.listen_address = take();
    } else if (name == "--web.telemetry-path") {
      f.telemetry_path = take();
      if (f.telemetry_path->empty() || (*f.telemetry_path)[0] != '/') {
        throw ConfigError{"flag --web.telemetry-path must start with '/'"};
      }
    } else if (name == "--web.config.file") {
      f.web_config_file = take();
    } else if (name == "--kubeconfig") {
      f.kubeconfig = take();
    } else if (name == "--state.file") {
      f.state_file = take();
    } else if (name == "--log.level") {
      const auto v = take();
      f.log_level = parse_log_level(v);
      if (!f.log_level) {
        throw ConfigError{"flag --log.level: expected debug, info, warn or error, got \"" + v +
                          "\""};
      }
    } else if (name == "--log.format") {
      const auto v = take();
      f.log_format = parse_log_format(v);
      if (!f.log_format) {
        throw ConfigError{"flag --log.format: expected logfmt or json, got \"" + v + "\""};
      }
    } else if (name == "--shard") {
      f.shard = take_int(0);
    } else if (name == "--total-shards") {
      f.total_shards = take_int(1);
    } else {
      throw ConfigError{"unknown flag " + name + " (see --help)"};
    }
  }
  return f;
}

std::optional<int> pod_ordinal(const std::string& pod_name) {
  const auto dash = pod_name.rfind('-');
  if (dash == std::string::npos) return std::nullopt;
  const std::string digits = pod_name.substr(dash + 1);
  if (digits.empty() || digits.size() > 3) return std::nullopt;
  int n = 0;
  for (const char ch : digits) {
    if (ch < '0' || ch > '9') return std::nullopt;
    n = n * 10 + (ch - '0');
  }
  return n;
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
  if (c.shard.shard >= c.shard.total_shards) {
    throw ConfigError{"shard " + std::to_string(c.shard.shard) + " must be below total shards " +
                      std::to_string(c.shard.total_shards)};
  }
  // kubeconfig: flag, then the file's key, then $KUBECONFIG; none means in-cluster.
  if (flags.kubeconfig) {
    c.kubernetes.kubeconfig = *flags.kubeconfig;
  } else if (c.kubernetes.kubeconfig.empty()) {
    if (auto k = env("KUBECONFIG")) c.kubernetes.kubeconfig = *k;
  }
  // Like Modal's SDKs, MODAL_SERVER_URL points the client elsewhere.
  if (auto url = env("MODAL_SERVER_URL")) c.modal.server_url = *url;
  return c;
}

}  // namespace mx
