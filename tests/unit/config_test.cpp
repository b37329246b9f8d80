#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <set>

#include "config/config.h"
#include "config/modal_server_urls.h"

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

// The dotted paths of the keys written in a YAML file of block mappings (as the example is).
std::set<std::string> keys_written_in(const std::string& path) {
  std::ifstream in(path);
  std::set<std::string> out;
  std::vector<std::pair<std::size_t, std::string>> stack;  // indent, dotted path
  for (std::string line; std::getline(in, line);) {
    const auto indent = line.find_first_not_of(' ');
    if (indent == std::string::npos || line[indent] == '#') continue;
    const auto colon = line.find(':', indent);
    if (colon == std::string::npos) continue;
    while (!stack.empty() && stack.back().first >= indent) stack.pop_back();
    const std::string name = line.substr(indent, colon - indent);
    const std::string key = stack.empty() ? name : stack.back().second + "." + name;
    out.insert(key);
    stack.emplace_back(indent, key);
  }
  return out;
}

TEST(Config, ExampleFileHasEveryKeyWithItsDefault) {
  const std::string path = MX_SOURCE_DIR "/config/modal-exporter.yaml";
  const auto written = keys_written_in(path);
  const auto table = config_keys();
  std::set<std::string> declared;
  for (const auto& key : table) {
    declared.insert(key.path);
    EXPECT_TRUE(written.count(key.path)) << key.path << " is not in " << path;
    EXPECT_FALSE(key.doc.empty()) << key.path;
  }
  for (const auto& key : written) {
    bool known = declared.count(key) > 0;
    for (const auto& d : declared)
      known =
          known || d.starts_with(key + ".") || key.starts_with(d + ".");  // a section, a map entry
    EXPECT_TRUE(known) << key << " is written in " << path << " but is no key of the reader";
  }
  const auto example = config_keys(load_config_file(path));
  ASSERT_EQ(example.size(), table.size());
  for (std::size_t i = 0; i < table.size(); ++i) {
    EXPECT_EQ(example[i].value, table[i].value) << table[i].path << ": example != default";
  }
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

TEST(Config, KeysMustBeStringsAndUnique) {
  auto e = error_of("web:\n  ? [a, b]\n  : 1\n");
  EXPECT_NE(e.find("key \"web\" (line 2): keys must be strings"), std::string::npos) << e;
  e = error_of("prices:\n  gpu_per_hour:\n    ? {a: 1}\n    : 2\n");
  EXPECT_NE(e.find("key \"prices.gpu_per_hour\" (line 3): keys must be strings"), std::string::npos)
      << e;
  e = error_of("log:\n  level: info\n  level: debug\n");
  EXPECT_NE(e.find("key \"log.level\" (line 3): duplicate key"), std::string::npos) << e;
}

TEST(Config, ErrorFormatNamesSourceKeyAndLine) {
  EXPECT_EQ(error_of("web:\n  listen_address: [a]\n"),
            "test.yaml: key \"web.listen_address\" (line 2): expected a string");
  EXPECT_EQ(error_of("- a\n"), "test.yaml: key \"<top level>\" (line 1): expected a mapping");
  EXPECT_EQ(error_of("sources:\n  modal:\n    apps_interval: [1s]\n"),
            "test.yaml: key \"sources.modal.apps_interval\" (line 3): expected a duration");
}

TEST(Config, ModalServerUrlIsCheckedEntryByEntry) {
  auto e = error_of("sources:\n  modal:\n    server_url: \"https://a:443, ftp://b\"\n");
  EXPECT_NE(e.find("key \"sources.modal.server_url\" (line 3)"), std::string::npos) << e;
  EXPECT_NE(e.find("\"ftp://b\" must start with https:// or http://"), std::string::npos) << e;
  e = error_of("sources:\n  modal:\n    server_url: \"https://a:443,\"\n");
  EXPECT_NE(e.find("empty entry"), std::string::npos) << e;
  e = error_of("sources:\n  modal:\n    server_url: https://a/path\n");
  EXPECT_NE(e.find("sources.modal.server_url"), std::string::npos) << e;
  EXPECT_EQ(parse_config("sources:\n  modal:\n    server_url: https://a, http://b:1\n", "t")
                .modal.server_url,
            "https://a, http://b:1");
}

TEST(Config, MaxCallsPerSecondRange) {
  auto e = error_of("sources:\n  modal:\n    max_calls_per_second: 0\n");
  EXPECT_NE(e.find("key \"sources.modal.max_calls_per_second\" (line 3): value 0 out of range"),
            std::string::npos)
      << e;
  e = error_of("sources:\n  modal:\n    max_calls_per_second: 1001\n");
  EXPECT_NE(e.find("out of range [0.01, 1000]"), std::string::npos) << e;
  e = error_of("sources:\n  modal:\n    max_calls_per_second: fast\n");
  EXPECT_NE(e.find("expected a number"), std::string::npos) << e;
  EXPECT_DOUBLE_EQ(parse_config("sources:\n  modal:\n    max_calls_per_second: 0.5\n", "t")
                       .modal.max_calls_per_second,
                   0.5);
}

TEST(Config, EnvModalServerUrlIsCheckedLikeTheKey) {
  const char* none[] = {"modal-exporter"};
  ::setenv("MODAL_SERVER_URL", "http://127.0.0.1:9, https://b", 1);
  EXPECT_EQ(resolve_config(parse_flags(1, none)).modal.server_url, "http://127.0.0.1:9, https://b");
  ::setenv("MODAL_SERVER_URL", "https://a, api.modal.com:443", 1);
  try {
    resolve_config(parse_flags(1, none));
    ADD_FAILURE() << "accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(e.message.find("MODAL_SERVER_URL"), std::string::npos) << e.message;
    EXPECT_NE(e.message.find("\"api.modal.com:443\""), std::string::npos) << e.message;
  }
  ::unsetenv("MODAL_SERVER_URL");
}

TEST(Config, OverflowingDurationIsRefusedNamingTheKey) {
  const auto e = error_of("sources:\n  modal:\n    apps_interval: 300000000000d\n");
  EXPECT_NE(e.find("key \"sources.modal.apps_interval\" (line 3)"), std::string::npos) << e;
  EXPECT_NE(e.find("too large"), std::string::npos) << e;
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

TEST(Duration, GoForms) {
  EXPECT_EQ(parse_duration("1.5s"), Duration(1500));
  EXPECT_EQ(parse_duration(".5s"), Duration(500));
  EXPECT_EQ(parse_duration("1.5h"), Duration(5400000));
  EXPECT_EQ(parse_duration("2h45m0.5s"), Duration(9900500));
  EXPECT_EQ(parse_duration("1000us"), Duration(1));
  EXPECT_EQ(parse_duration("1000\u00b5s"), Duration(1));  // micro sign
  EXPECT_EQ(parse_duration("1000\u03bcs"), Duration(1));  // Greek mu
  EXPECT_EQ(parse_duration("2000000ns"), Duration(2));
  EXPECT_EQ(parse_duration("+5s"), Duration(5000));
  EXPECT_EQ(parse_duration("1d"), Duration(86400000));
  EXPECT_EQ(parse_duration("-0"), Duration(0));
  EXPECT_FALSE(parse_duration("."));
  EXPECT_FALSE(parse_duration("1.s.5"));
  EXPECT_FALSE(parse_duration("1h 30m"));
}

TEST(Duration, RefusalsSayWhy) {
  std::string error;
  EXPECT_FALSE(parse_duration("300000000000d", &error));
  EXPECT_EQ(error,
            "duration \"300000000000d\" is too large (the limit is 2562047h, about 292 years)");
  EXPECT_FALSE(parse_duration("2562048h", &error));
  EXPECT_NE(error.find("too large"), std::string::npos);
  EXPECT_FALSE(parse_duration("9223372036854775807ns", &error));  // not a whole ms
  EXPECT_EQ(parse_duration("2562047h"), Duration(2562047LL * 3600000));
  EXPECT_FALSE(parse_duration("1.5ms", &error));
  EXPECT_EQ(error, "duration \"1.5ms\" is finer than 1ms");
  EXPECT_FALSE(parse_duration("-5s", &error));
  EXPECT_EQ(error, "negative duration \"-5s\"");
  EXPECT_FALSE(parse_duration("5 s", &error));
  EXPECT_EQ(error.rfind("malformed duration \"5 s\"", 0), 0u) << error;
}

TEST(Flags, UsageListsEveryFlagAndNoValueFlagsTakeNone) {
  const auto usage = flags_usage();
  for (const char* flag :
       {"--config PATH", "--web.listen-address ADDR", "--web.telemetry-path PATH",
        "--web.config.file PATH", "--kubeconfig PATH", "--state.file PATH", "--log.level LEVEL",
        "--log.format FORMAT", "--shard N", "--total-shards M", "--shard.from-pod-name",
        "--version", "--help"}) {
    EXPECT_NE(usage.find(std::string("\n  ") + flag + " "), std::string::npos) << flag;
  }
  EXPECT_NE(usage.find("  --shard N                     this replica's shard (default 0)\n"),
            std::string::npos)
      << usage;
  const char* version[] = {"modal-exporter", "--version=1"};
  EXPECT_THROW(parse_flags(2, version), ConfigError);
  const char* shard[] = {"modal-exporter", "--shard=1000"};
  EXPECT_THROW(parse_flags(2, shard), ConfigError);
  const char* path[] = {"modal-exporter", "--web.telemetry-path", "metrics"};
  EXPECT_THROW(parse_flags(3, path), ConfigError);
  const char* help[] = {"modal-exporter", "-h"};
  EXPECT_TRUE(parse_flags(2, help).show_help);
}

TEST(ModalServerUrl, SchemeSelectsTlsAndDefaultPort) {
  std::string error;
  auto t = parse_modal_server_url("https://api.modal.com:443", &error);
  ASSERT_TRUE(t) << error;
  EXPECT_EQ(t->target, "api.modal.com:443");
  EXPECT_TRUE(t->tls);
  t = parse_modal_server_url("https://api.modal.com", &error);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->target, "api.modal.com:443");
  t = parse_modal_server_url("http://127.0.0.1:5000/", &error);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->target, "127.0.0.1:5000");
  EXPECT_FALSE(t->tls);
  t = parse_modal_server_url("http://[::1]:5000", &error);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->target, "[::1]:5000");
}

TEST(ModalServerUrl, RejectsWhatGrpcCannotUse) {
  for (const char* bad :
       {"api.modal.com:443", "grpc://x:1", "https://", "https://x:0", "https://x:99999",
        "https://x:abc", "https://x/path", "https://:443", "https://[::1", "https://u@x:1"}) {
    std::string error;
    EXPECT_FALSE(parse_modal_server_url(bad, &error)) << bad;
    EXPECT_NE(error.find("\"" + std::string(bad) + "\""), std::string::npos) << error;
  }
}

TEST(ServerUrls, AcceptsACommaSeparatedList) {
  std::string error;
  auto list = parse_modal_server_urls("https://api.modal.com, https://api.modal2.com:8443", &error);
  ASSERT_TRUE(list) << error;
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].target, "api.modal.com:443");
  EXPECT_EQ((*list)[1].target, "api.modal2.com:8443");
  list = parse_modal_server_urls("http://127.0.0.1:1", &error);
  ASSERT_TRUE(list);
  EXPECT_EQ(list->size(), 1u);
  EXPECT_FALSE((*list)[0].tls);
  for (const char* bad : {"", ",", "https://a,", "https://a,,https://b", "https://a,b:443"}) {
    EXPECT_FALSE(parse_modal_server_urls(bad, &error)) << bad;
    EXPECT_FALSE(error.empty());
  }
}

}  // namespace
}  // namespace mx
