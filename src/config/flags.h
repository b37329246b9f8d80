// Command-line flags (Prometheus exporter conventions): each declared once, with its usage line,
// in flags.cpp. Flags win over the YAML file (resolve_config, config.h).
#pragma once

#include <optional>
#include <string>

#include "common/log.h"

namespace mx {

struct Flags {
  std::optional<std::string> config_path;
  std::optional<std::string> listen_address;
  std::optional<std::string> telemetry_path;
  std::optional<std::string> web_config_file;
  std::optional<std::string> kubeconfig;
  std::optional<std::string> state_file;
  std::optional<LogLevel> log_level;
  std::optional<LogFormat> log_format;
  std::optional<int> shard;
  std::optional<int> total_shards;
  bool shard_from_pod_name = false;  // shard = ordinal of $POD_NAME (else $HOSTNAME)
  bool show_version = false;
  bool show_help = false;
};

// Throws ConfigError (config.h) on an unknown flag or a bad value.
Flags parse_flags(int argc, const char* const* argv);
std::string flags_usage();

// The ordinal a StatefulSet gives its pods: the digits after the last '-' of a pod name
// ("modal-exporter-2" -> 2); nullopt when there are none or the number exceeds 999.
std::optional<int> pod_ordinal(const std::string& pod_name);

}  // namespace mx
