#include "config/flags.h"

#include <functional>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "config/values.h"

namespace mx {
namespace {

struct FlagSpec {
  std::vector<std::string_view> names;  // the first is the one --help shows
  std::string_view value;               // how --help names the value; empty: takes none
  std::string_view help;                // lines after the first are indented under it
  std::function<void(Flags&, const std::string& value)> set;
};

[[noreturn]] void bad_value(std::string_view flag, const std::string& what) {
  throw ConfigError{"flag " + std::string(flag) + ": " + what};
}

template <typename T>
T checked(std::string_view flag, std::optional<T> value, const std::string& error) {
  if (!value) bad_value(flag, error);
  return *value;
}

// The shard numbers have the range of shard.shard / shard.total_shards in the file.
int integer(std::string_view flag, const std::string& v, int min, int max) {
  std::string error;
  return static_cast<int>(checked(flag, parse_integer(v, min, max, &error), error));
}

// One row per flag; the rows look alike by design (duplicates lists them).
const std::vector<FlagSpec>& specs() {
  static const std::vector<FlagSpec> kFlags = {
      {{"--config"},
       "PATH",
       "YAML configuration file (see config/modal-exporter.yaml)",
       [](Flags& f, const std::string& v) { f.config_path = v; }},
      {{"--web.listen-address"},
       "ADDR",
       "address to serve metrics on (default \":8081\")",
       [](Flags& f, const std::string& v) { f.listen_address = v; }},
      {{"--web.telemetry-path"},
       "PATH",
       "path of the metrics endpoint (default \"/metrics\")",
       [](Flags& f, const std::string& v) {
         if (const auto error = telemetry_path_error(v); !error.empty()) {
           bad_value("--web.telemetry-path", error);
         }
         f.telemetry_path = v;
       }},
      {{"--web.config.file"},
       "PATH",
       "TLS / basic auth / rate limit config, exporter-toolkit's format",
       [](Flags& f, const std::string& v) { f.web_config_file = v; }},
      {{"--kubeconfig"},
       "PATH",
       "kubeconfig to use (default: $KUBECONFIG, else in-cluster)",
       [](Flags& f, const std::string& v) { f.kubeconfig = v; }},
      {{"--state.file"},
       "PATH",
       "file keeping counted job UIDs across restarts",
       [](Flags& f, const std::string& v) { f.state_file = v; }},
      {{"--log.level"},
       "LEVEL",
       "debug, info, warn or error (default info)",
       [](Flags& f, const std::string& v) {
         std::string error;
         f.log_level = checked("--log.level", parse_name(v, log_level_names(), &error), error);
       }},
      {{"--log.format"},
       "FORMAT",
       "logfmt or json (default logfmt)",
       [](Flags& f, const std::string& v) {
         std::string error;
         f.log_format = checked("--log.format", parse_name(v, log_format_names(), &error), error);
       }},
      {{"--shard"},
       "N",
       "this replica's shard (default 0)",
       [](Flags& f, const std::string& v) { f.shard = integer("--shard", v, 0, 999); }},
      {{"--total-shards"},
       "M",
       "number of shards (default 1)",
       [](Flags& f, const std::string& v) {
         f.total_shards = integer("--total-shards", v, 1, 1000);
       }},
      {{"--shard.from-pod-name"},
       "",
       "shard = trailing ordinal of $POD_NAME (else $HOSTNAME), as a\n"
       "StatefulSet names its pods (\"modal-exporter-2\" -> 2)",
       [](Flags& f, const std::string&) { f.shard_from_pod_name = true; }},
      {{"--version", "-version"},
       "",
       "print the version and exit",
       [](Flags& f, const std::string&) { f.show_version = true; }},
      {{"--help", "-h", "-help"},
       "",
       "print this help and exit",
       [](Flags& f, const std::string&) { f.show_help = true; }},
  };
  return kFlags;
}

const FlagSpec* find(std::string_view name) {
  for (const auto& spec : specs()) {
    for (auto n : spec.names) {
      if (n == name) return &spec;
    }
  }
  return nullptr;
}

}  // namespace

std::string flags_usage() {
  constexpr std::size_t kHelpColumn = 32;
  std::string out =
      "usage: modal-exporter [flags]\n\n"
      "Derives the Modal operator's Prometheus metrics from the Kubernetes API and Modal's "
      "control plane.\n\n";
  for (const auto& spec : specs()) {
    std::string line = "  " + std::string(spec.names.front());
    if (!spec.value.empty()) line += " " + std::string(spec.value);
    line.resize(std::max(line.size() + 1, kHelpColumn), ' ');
    for (const char c : spec.help) {
      line += c;
      if (c == '\n') line += std::string(kHelpColumn, ' ');
    }
    out += line + "\n";
  }
  out +=
      "\nFlags override the configuration file. SIGHUP reloads the file; SIGTERM/SIGINT stop "
      "gracefully.\n";
  return out;
}

Flags parse_flags(int argc, const char* const* argv) {
  Flags f;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto eq = arg.find('=');
    const std::string name = arg.substr(0, eq);
    const FlagSpec* spec = find(name);
    if (!spec) throw ConfigError{"unknown flag " + name + " (see --help)"};
    std::string value;
    if (spec->value.empty()) {
      if (eq != std::string::npos) throw ConfigError{"flag " + name + " takes no value"};
    } else if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      throw ConfigError{"flag " + name + " needs a value"};
    }
    spec->set(f, value);
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

}  // namespace mx
