// What a remote sends can be anything. Every parser of remote data gets systematically broken
// input: each field of valid objects replaced by every JSON type and by extreme values, and
// random byte mutations of valid text. Nothing may throw or crash (this runs under ASan+UBSan),
// what the parsers accept must be sane, and the model must render whatever they produce as
// exposition text whose every sample line parses again.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>

#include "common/log.h"
#include "metrics/derivation.h"
#include "model/model.h"
#include "sources/kubernetes/parse.h"
#include "sources/modal/decimal.h"
#include "sources/telemetry/exposition_parser.h"

namespace mx {
namespace {

using nlohmann::json;

// Valid objects of every kind the Kubernetes source reads.
std::vector<json> valid_objects() {
  return {
      json::parse(R"({"apiVersion": "modal-operator.io/v1alpha1", "kind": "ModalJob",
        "metadata": {"uid": "u-1", "name": "train", "namespace": "ml", "resourceVersion": "7",
                     "creationTimestamp": "2024-01-02T03:04:05Z",
                     "annotations": {"modal-operator.io/telemetry-url": "http://x/metrics"}},
        "spec": {"image": "i", "gpu": "A100-80GB:2", "replicas": 3, "enable_i6pn": true,
                 "cpu": "2", "memory": "4Gi"},
        "status": {"phase": "Running", "modal_app_id": "ap-1", "modal_function_id": "fu-1",
                   "created_at": "2024-01-02T03:04:05", "started_at": "2024-01-02T03:05:05",
                   "finished_at": null}})"),
      json::parse(R"({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"uid": "u-2", "name": "p", "namespace": "ml",
                     "creationTimestamp": "2024-01-02T03:04:05Z",
                     "annotations": {"modal-operator.io/use-modal": "true",
                                     "modal-operator.io/mutated": "true",
                                     "modal-operator.io/gpu": "T4", "modal-operator.io/replicas": "2",
                                     "modal-operator.io/enable-i6pn": "true",
                                     "modal-operator.io/cpu": "500m",
                                     "modal-operator.io/memory": "512Mi"}},
        "status": {"phase": "Succeeded", "startTime": "2024-01-02T03:04:06Z",
                   "containerStatuses": [{"name": "modal-operator", "restartCount": 2,
                     "state": {"terminated": {"finishedAt": "2024-01-02T03:14:06Z"}}}]}})"),
      json::parse(R"({"kind": "ModalEndpoint", "metadata": {"uid": "u-3", "name": "e",
        "namespace": "ml"}, "status": {"modal_app_id": "ap-2", "ready_replicas": 2}})"),
      json::parse(R"({"kind": "ModalFunction", "metadata": {"uid": "u-4", "name": "f",
        "namespace": "ml"}, "status": {"modal_app_id": "ap-3", "phase": "Deployed"}})"),
      json::parse(R"({"kind": "Event", "metadata": {"uid": "u-5", "namespace": "ml"},
        "type": "Warning", "reason": "BackOff", "count": 3, "series": {"count": 4},
        "involvedObject": {"apiVersion": "modal-operator.io/v1alpha1", "kind": "ModalJob",
                           "name": "train"}})"),
  };
}

// Values that break naive code: every JSON type, extremes, odd strings.
std::vector<json> hostile_values() {
  return {nullptr,
          true,
          0,
          -1,
          std::numeric_limits<std::int64_t>::max(),
          std::numeric_limits<std::int64_t>::min(),
          std::numeric_limits<std::uint64_t>::max(),
          1e308,
          -1e308,
          0.5,
          "",
          "-1",
          "1e400",
          "NaN",
          "A100:-3",
          "T4:99999999999999999999",
          ":",
          "9999-99-99T99:99:99Z",
          std::string(5000, 'x'),
          std::string("a\0b", 3),
          "\xff\xfe",
          json::array(),
          json::array({1, "x", nullptr}),
          json::object(),
          json::object({{"count", -5}})};
}

// Calls f on a copy of `root` with each value (object member or array element), at any depth,
// replaced by each hostile value, and on copies with each member removed.
void for_each_variant(const json& root, const std::function<void(const json&)>& f) {
  std::function<void(json&, const std::function<void()>&)> walk;
  walk = [&](json& node, const std::function<void()>& emit) {
    if (node.is_object()) {
      std::vector<std::string> keys;
      for (auto it = node.begin(); it != node.end(); ++it) keys.push_back(it.key());
      for (const auto& key : keys) {
        json saved = node[key];
        for (const auto& v : hostile_values()) {
          node[key] = v;
          emit();
        }
        node.erase(key);
        emit();
        node[key] = saved;
        walk(node[key], emit);
      }
    } else if (node.is_array()) {
      for (auto& element : node) {
        json saved = element;
        for (const auto& v : hostile_values()) {
          element = v;
          emit();
        }
        element = saved;
        walk(element, emit);
      }
    }
  };
  json copy = root;
  walk(copy, [&] { f(copy); });
}

bool sane(double v) {
  return std::isfinite(v) && v >= 0;
}

// Every sample line of rendered exposition text parses with the exporter's own parser.
void expect_renders_parseable(Model& model) {
  FamilySet set;
  Derivation derivation(set);
  derivation.update(model);
  const auto snapshot = set.publish(1);
  for (auto format : {ExpositionFormat::text, ExpositionFormat::openmetrics}) {
    ExpositionParseOptions options;
    options.format = format;
    const auto parsed = parse_exposition(snapshot->body(format), options);
    ASSERT_EQ(parsed.error_count, 0u)
        << (parsed.errors.empty()
                ? std::string()
                : parsed.errors[0].reason + " at line " + std::to_string(parsed.errors[0].line));
  }
}

TEST(HostileInput, KubernetesObjectsWithEveryFieldBroken) {
  log::configure(LogLevel::error, LogFormat::logfmt);  // duplicate names are expected here
  Config config;
  Model model(config, [] { return 1704164645.0 + 600; });
  std::size_t variants = 0, accepted = 0;
  for (const auto& object : valid_objects()) {
    for_each_variant(object, [&](const json& o) {
      ++variants;
      auto job = kube::parse_modal_job(o);
      auto pod = kube::parse_offloaded_pod(o);
      auto endpoint = kube::parse_modal_endpoint(o);
      auto event = kube::parse_warning_event(o);
      (void)kube::container_restart_count(o, "modal-operator");
      (void)kube::resource_version(o);
      for (auto* j : {&job, &pod}) {
        if (!j->object) continue;
        ++accepted;
        const JobObject& parsed = *j->object;
        EXPECT_FALSE(parsed.uid.empty());
        EXPECT_GE(parsed.gpu_count, 0) << o.dump();
        EXPECT_GE(parsed.replicas, 1) << o.dump();
        EXPECT_TRUE(sane(parsed.cpu_cores)) << o.dump();
        EXPECT_TRUE(sane(parsed.memory_gib)) << o.dump();
        for (auto t : {parsed.created_at, parsed.started_at, parsed.finished_at}) {
          if (t) {
            EXPECT_TRUE(std::isfinite(*t)) << o.dump();
          }
        }
        model.upsert_job(parsed);
      }
      if (endpoint.object) model.upsert_endpoint(*endpoint.object);
      if (event.object) {
        EXPECT_GE(event.object->count, 1);
        model.observe_warning_event(*event.object);
      }
    });
  }
  std::printf("%zu variants, %zu accepted as jobs\n", variants, accepted);
  EXPECT_GT(variants, 1000u);
  EXPECT_GT(accepted, 100u);  // broken fields mostly fall back to defaults, not rejection
  model.tick();
  expect_renders_parseable(model);
}

// Random strings over an alphabet of the characters these formats are made of.
std::vector<std::string> random_strings(std::size_t n, const std::string& alphabet,
                                        std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::string> out;
  for (std::size_t i = 0; i < n; ++i) {
    std::string s(std::uniform_int_distribution<std::size_t>(0, 40)(rng), ' ');
    for (char& c : s) c = alphabet[rng() % alphabet.size()];
    out.push_back(std::move(s));
  }
  return out;
}

TEST(HostileInput, ScalarParsersOnRandomStrings) {
  for (const auto& s : random_strings(20000, "0123456789-+:.TZtzeE eimKMGkn\x01\xff", 1)) {
    if (auto t = kube::parse_timestamp(s)) {
      EXPECT_TRUE(std::isfinite(*t)) << s;
    }
    if (auto q = kube::parse_quantity(s)) {
      EXPECT_TRUE(sane(*q)) << s;
    }
    if (auto m = kube::parse_memory_gib(s)) {
      EXPECT_TRUE(sane(*m)) << s;
    }
    const auto gpu = kube::parse_gpu(s);
    EXPECT_GE(gpu.count, 0) << s;
    EXPECT_FALSE(gpu.type.empty()) << s;
    if (auto usd = parse_usd(s)) {
      EXPECT_EQ(parse_usd(format_usd(*usd)), usd) << s;
    }
  }
}

TEST(HostileInput, ExpositionParserOnMutatedBodies) {
  const std::string valid =
      "# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).\n"
      "# TYPE DCGM_FI_DEV_GPU_UTIL gauge\n"
      "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\",UUID=\"GPU-1\",modelName=\"NVIDIA A100\"} 87 1700000000000\n"
      "node_network_receive_bytes_total{device=\"eth0\"} 1.5e+09\n"
      "node_network_transmit_bytes_total{device=\"lo\"} +Inf\n"
      "h_bucket{le=\"0.5\",path=\"a\\\\b\\\"c\\nd\"} NaN\n"
      "h_sum -0.0\n"
      "# EOF\n";
  std::mt19937_64 rng(2);
  const std::string alphabet = "{}\",=\\\n #.e+-0123456789aZ_:\x00\xff";
  for (int i = 0; i < 20000; ++i) {
    std::string body = valid;
    const int edits = 1 + static_cast<int>(rng() % 8);
    for (int e = 0; e < edits && !body.empty(); ++e) {
      const std::size_t at = rng() % body.size();
      switch (rng() % 3) {
        case 0:
          body[at] = alphabet[rng() % alphabet.size()];
          break;
        case 1:
          body.erase(at, 1 + rng() % 4);
          break;
        default:
          body.insert(at, 1, alphabet[rng() % alphabet.size()]);
          break;
      }
    }
    for (auto format : {ExpositionFormat::text, ExpositionFormat::openmetrics}) {
      ExpositionParseOptions options;
      options.format = format;
      const auto parsed = parse_exposition(body, options);
      EXPECT_GE(parsed.error_count, parsed.errors.size());
      for (const auto& sample : parsed.samples) EXPECT_FALSE(sample.name.empty()) << body;
    }
  }
}

}  // namespace
}  // namespace mx
