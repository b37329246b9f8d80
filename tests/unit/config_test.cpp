#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "config/config.h"

namespace mx {
namespace {

std::string error_of(const std::string& yaml) {
  try {
    parse_config(yaml, "test.yaml");
  } catch (const ConfigError& e) {
    return e.message;
  }
  return "";
}

TEST(Config, ExampleFileWritesOutEveryDefault) {
  const Config example = load_config_file(MX_SOURCE_DIR "/config/modal-exporter.yaml");
  const Config defaults;
  EXPECT_EQ(example.web.listen_address, defaults.web.listen_address);
  EXPECT_EQ(example.web.read_timeout, defaults.web.read_timeout);
  EXPECT_EQ(example.web.max_request_bytes, defaults.web.max_request_bytes);
  EXPECT_EQ(example.kubernetes.resync_interval, defaults.kubernetes.resync_interval);
  EXPECT_EQ(example.kubernetes.max_event_bytes, defaults.kubernetes.max_event_bytes);
  EXPECT_EQ(example.kubernetes.operator_container, defaults.kubernetes.operator_container);
  EXPECT_EQ(example.modal.billing_interval, defaults.modal.billing_interval);
  EXPECT_EQ(example.modal.rates_interval, defaults.modal.rates_interval);
  EXPECT_EQ(example.modal.server_url, defaults.modal.server_url);
  EXPECT_EQ(example.telemetry.interval, defaults.telemetry.interval);
  EXPECT_EQ(example.upstream.enabled, defaults.upstream.enabled);
  EXPECT_EQ(example.limits.max_jobs, defaults.limits.max_jobs);
  EXPECT_EQ(example.prices.gpu_per_hour, defaults.prices.gpu_per_hour);
  EXPECT_DOUBLE_EQ(example.prices.cpu_core_per_hour, defaults.prices.cpu_core_per_hour);
  EXPECT_TRUE(example.kubernetes.enabled && example.modal.enabled && example.telemetry.enabled);
}

TEST(Config, ParsesValues) {
  const auto c = parse_config(R"(
web:
  listen_address: "127.0.0.1:9000"
  read_timeout: 1m30s
sources:
  kubernetes:
    namespaces: [a, b]
  modal:
    enabled: false
prices:
  gpu_per_hour:
    T4: 1.5
)",
                              "t");
  EXPECT_EQ(c.web.listen_address, "127.0.0.1:9000");
  EXPECT_EQ(c.web.read_timeout, Duration(90000));
  EXPECT_EQ(c.kubernetes.namespaces, (std::vector<std::string>{"a", "b"}));
  EXPECT_FALSE(c.modal.enabled);
  EXPECT_DOUBLE_EQ(c.prices.gpu_per_hour.at("T4"), 1.5);
  EXPECT_DOUBLE_EQ(c.prices.gpu_per_hour.at("H100"), 3.9492);  // others keep defaults
}

TEST(Config, EmptyDocumentMeansDefaults) {
  EXPECT_EQ(parse_config("", "t").web.listen_address, ":8081");
}

TEST(Config, UnknownKeyNamesKeyAndLine) {
  const auto e = error_of("web:\n  listen_address: \":1\"\n  listen_adress: \":2\"\n");
  EXPECT_NE(e.find("web.listen_adress"), std::string::npos) << e;
  EXPECT_NE(e.find("line 3"), std::string::npos) << e;
  EXPECT_NE(e.find("unknown key"), std::string::npos) << e;
  EXPECT_NE(error_of("bogus: 1\n").find("\"bogus\""), std::string::npos);
  EXPECT_NE(error_of("sources:\n  kubernetes:\n    watch_timout: 5m\n")
                .find("sources.kubernetes.watch_timout"),
            std::string::npos);
}

TEST(Config, WrongTypes) {
  auto e = error_of("sources:\n  modal:\n    enabled: maybe\n");
  EXPECT_NE(e.find("sources.modal.enabled"), std::string::npos) << e;
  EXPECT_NE(e.find("line 3"), std::string::npos) << e;
  e = error_of("web:\n  max_connections: many\n");
  EXPECT_NE(e.find("web.max_connections"), std::string::npos) << e;
  EXPECT_NE(e.find("integer"), std::string::npos) << e;
  e = error_of("sources:\n  kubernetes:\n    namespaces: default\n");
  EXPECT_NE(e.find("list"), std::string::npos) << e;
  e = error_of("web: 5\n");
  EXPECT_NE(e.find("mapping"), std::string::npos) << e;
  e = error_of("log:\n  level: verbose\n");
  EXPECT_NE(e.find("log.level"), std::string::npos) << e;
  e = error_of("prices:\n  gpu_per_hour:\n    T4: cheap\n");
  EXPECT_NE(e.find("prices.gpu_per_hour.T4"), std::string::npos) << e;
}

TEST(Config, NegativeAndMalformedDurations) {
  auto e = error_of("sources:\n  modal:\n    apps_interval: -15s\n");
  EXPECT_NE(e.find("sources.modal.apps_interval"), std::string::npos) << e;
  EXPECT_NE(e.find("negative"), std::string::npos) << e;
  EXPECT_NE(e.find("line 3"), std::string::npos) << e;
  e = error_of("sources:\n  telemetry:\n    interval: 10 seconds\n");
  EXPECT_NE(e.find("malformed duration"), std::string::npos) << e;
  e = error_of("sources:\n  telemetry:\n    interval: 10\n");
  EXPECT_NE(e.find("malformed duration"), std::string::npos) << e;
  e = error_of("sources:\n  telemetry:\n    interval: 0s\n");
  EXPECT_NE(e.find("above 0"), std::string::npos) << e;
}

TEST(Config, OutOfRangeAndCrossField) {
  EXPECT_NE(error_of("web:\n  max_connections: -1\n").find("out of range"), std::string::npos);
  EXPECT_NE(error_of("web:\n  gzip_level: 10\n").find("web.gzip_level"), std::string::npos);
  EXPECT_NE(error_of("backoff:\n  initial: 10s\n  max: 1s\n").find("backoff.max"),
            std::string::npos);
  EXPECT_NE(error_of("sources:\n  upstream:\n    enabled: true\n").find("sources.upstream.url"),
            std::string::npos);
  EXPECT_NE(error_of("web:\n  telemetry_path: metrics\n").find("web.telemetry_path"),
            std::string::npos);
  EXPECT_NE(error_of("shard:\n  shard: 3\n  total_shards: 2\n").find("shard.shard"),
            std::string::npos);
}

TEST(Config, InvalidYamlNamesLine) {
  const auto e = error_of("web:\n  listen_address: [unclosed\n");
  EXPECT_NE(e.find("invalid YAML"), std::string::npos) << e;
  EXPECT_NE(e.find("line"), std::string::npos) << e;
}

TEST(Flags, ParseAndOverrideYaml) {
  const std::string path = ::testing::TempDir() + "/flags.yaml";
  std::ofstream(path) << "web:\n  listen_address: \":9999\"\n  telemetry_path: /m\n"
                         "log:\n  level: warn\nstate_file: /from/yaml\n";
  const char* argv[] = {"modal-exporter", "--config",
                        path.c_str(),     "--web.listen-address=127.0.0.1:7000",
                        "--log.level",    "debug"};
  const Flags f = parse_flags(6, argv);
  const Config c = resolve_config(f);
  EXPECT_EQ(c.web.listen_address, "127.0.0.1:7000");  // flag wins
  EXPECT_EQ(c.web.telemetry_path, "/m");              // file value kept
  EXPECT_EQ(c.log.level, LogLevel::debug);
  EXPECT_EQ(c.state_file, "/from/yaml");
}

TEST(Flags, KubeconfigPrecedence) {
  ::setenv("KUBECONFIG", "/env/kubeconfig", 1);
  const char* none[] = {"modal-exporter"};
  EXPECT_EQ(resolve_config(parse_flags(1, none)).kubernetes.kubeconfig, "/env/kubeconfig");
  const char* flag[] = {"modal-exporter", "--kubeconfig", "/flag/kc"};
  EXPECT_EQ(resolve_config(parse_flags(3, flag)).kubernetes.kubeconfig, "/flag/kc");
  ::unsetenv("KUBECONFIG");
  EXPECT_EQ(resolve_config(parse_flags(1, none)).kubernetes.kubeconfig, "");
}

TEST(Flags, Errors) {
  const char* unknown[] = {"modal-exporter", "--web.listen"};
  EXPECT_THROW(parse_flags(2, unknown), ConfigError);
  const char* missing[] = {"modal-exporter", "--config"};
  EXPECT_THROW(parse_flags(2, missing), ConfigError);
  const char* level[] = {"modal-exporter", "--log.level=loud"};
  EXPECT_THROW(parse_flags(2, level), ConfigError);
  const char* format[] = {"modal-exporter", "--log.format=xml"};
  EXPECT_THROW(parse_flags(2, format), ConfigError);
  const char* version[] = {"modal-exporter", "--version"};
  EXPECT_TRUE(parse_flags(2, version).show_version);
}

TEST(Flags, ShardFromPodName) {
  EXPECT_EQ(pod_ordinal("modal-exporter-2"), 2);
  EXPECT_EQ(pod_ordinal("x-0"), 0);
  EXPECT_EQ(pod_ordinal("x-999"), 999);
  EXPECT_FALSE(pod_ordinal("modal-exporter"));
  EXPECT_FALSE(pod_ordinal("modal-exporter-"));
  EXPECT_FALSE(pod_ordinal("modal-exporter-7f9c"));
  EXPECT_FALSE(pod_ordinal("x-1000"));
  EXPECT_FALSE(pod_ordinal("3"));

  const char* saved_host = std::getenv("HOSTNAME");
  const std::string host = saved_host ? saved_host : "";
  const char* argv[] = {"modal-exporter", "--total-shards=3", "--shard.from-pod-name"};
  const Flags f = parse_flags(3, argv);
  EXPECT_TRUE(f.shard_from_pod_name);
  ::setenv("POD_NAME", "modal-operator-2", 1);
  ::setenv("HOSTNAME", "modal-operator-1", 1);
  EXPECT_EQ(resolve_config(f).shard.shard, 2);  // POD_NAME first
  EXPECT_EQ(resolve_config(f).shard.total_shards, 3);
  ::unsetenv("POD_NAME");
  EXPECT_EQ(resolve_config(f).shard.shard, 1);  // else HOSTNAME
  ::setenv("POD_NAME", "modal-operator-3", 1);  // ordinal beyond --total-shards
  EXPECT_THROW(resolve_config(f), ConfigError);
  ::setenv("POD_NAME", "modal-operator-5d8f7c9b4-x2kq9", 1);  // a Deployment's pod
  EXPECT_THROW(resolve_config(f), ConfigError);
  ::unsetenv("POD_NAME");
  ::unsetenv("HOSTNAME");
  EXPECT_THROW(resolve_config(f), ConfigError);
  ::setenv("POD_NAME", "modal-operator-0", 1);
  const char* both[] = {"modal-exporter", "--total-shards=3", "--shard=1", "--shard.from-pod-name"};
  EXPECT_THROW(resolve_config(parse_flags(4, both)), ConfigError);
  ::unsetenv("POD_NAME");
  if (saved_host) ::setenv("HOSTNAME", host.c_str(), 1);
}

TEST(Duration, ParseAndFormat) {
  EXPECT_EQ(parse_duration("500ms"), Duration(500));
  EXPECT_EQ(parse_duration("1h30m"), Duration(5400000));
  EXPECT_EQ(parse_duration("0"), Duration(0));
  EXPECT_FALSE(parse_duration(""));
  EXPECT_FALSE(parse_duration("5"));
  EXPECT_FALSE(parse_duration("-5s"));
  EXPECT_FALSE(parse_duration("5x"));
  EXPECT_FALSE(parse_duration("s"));
  EXPECT_FALSE(parse_duration("99999999999999999999h"));
  EXPECT_EQ(format_duration(Duration(90500)), "1m30s500ms");
}

}  // namespace
}  // namespace mx
