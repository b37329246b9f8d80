// Checks the manifests `helm template` rendered from charts/modal-operator (the ctest fixture
// `deploy_rendered` writes them to MX_RENDERED_DIR, one file per values scenario; see
// tests/deploy/CMakeLists.txt): sidecar, ports, probes, security context, env, volumes, the
// exporter's config file (parsed by the exporter's own config loader), Service, ServiceMonitor,
// PrometheusRule, dashboard ConfigMap and the exporter's read-only RBAC; and the chart's own
// files: the values schema and the values table of its README.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <tuple>

#include "config/config.h"
#include "config/web_config.h"

namespace mx::testing {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// All objects of one rendered scenario.
class Rendered {
 public:
  explicit Rendered(const std::string& scenario) {
    const std::string path = std::string(MX_RENDERED_DIR) + "/" + scenario + ".yaml";
    for (const auto& doc : YAML::LoadAll(read_file(path))) {
      if (doc.IsMap() && doc["kind"]) docs_.push_back(doc);
    }
    if (docs_.empty()) throw std::runtime_error(path + " holds no object");
  }

  std::vector<YAML::Node> all(const std::string& kind) const {
    std::vector<YAML::Node> out;
    for (const auto& d : docs_) {
      if (d["kind"].as<std::string>() == kind) out.push_back(d);
    }
    return out;
  }
  YAML::Node one(const std::string& kind) const {
    const auto v = all(kind);
    if (v.size() != 1) {
      throw std::runtime_error("expected exactly one " + kind + ", found " +
                               std::to_string(v.size()));
    }
    return v.front();
  }
  YAML::Node named(const std::string& kind, const std::string& name) const {
    for (const auto& d : all(kind)) {
      if (d["metadata"]["name"].as<std::string>() == name) return d;
    }
    throw std::runtime_error("no " + kind + " named " + name);
  }

  // The one workload: the Deployment, or the StatefulSet of the sharded mode.
  YAML::Node workload() const {
    auto w = all("Deployment");
    for (const auto& s : all("StatefulSet")) w.push_back(s);
    if (w.size() != 1) {
      throw std::runtime_error("expected one Deployment or StatefulSet, found " +
                               std::to_string(w.size()));
    }
    return w.front();
  }
  YAML::Node pod_spec() const { return workload()["spec"]["template"]["spec"]; }
  YAML::Node container(const std::string& name) const {
    for (const auto& c : pod_spec()["containers"]) {
      if (c["name"].as<std::string>() == name) return c;
    }
    throw std::runtime_error("no container " + name);
  }
  std::vector<std::string> container_names() const {
    std::vector<std::string> out;
    for (const auto& c : pod_spec()["containers"]) out.push_back(c["name"].as<std::string>());
    return out;
  }

 private:
  std::vector<YAML::Node> docs_;
};

YAML::Node env_var(const YAML::Node& container, const std::string& name) {
  for (const auto& e : container["env"]) {
    if (e["name"].as<std::string>() == name) return e;
  }
  throw std::runtime_error("no env " + name);
}

YAML::Node find_by(const YAML::Node& list, const std::string& key, const std::string& value) {
  for (const auto& item : list) {
    if (item[key] && item[key].as<std::string>() == value) return item;
  }
  throw std::runtime_error("no entry with " + key + "=" + value);
}

std::vector<std::string> strings(const YAML::Node& seq) {
  std::vector<std::string> out;
  for (const auto& s : seq) out.push_back(s.as<std::string>());
  return out;
}

bool has_string(const YAML::Node& seq, const std::string& s) {
  const auto v = strings(seq);
  return std::find(v.begin(), v.end(), s) != v.end();
}

// (apiGroup, resource, verb) triples of a Role/ClusterRole; any other field in a rule is an
// error (resourceNames, nonResourceURLs would change what is granted).
using Grant = std::tuple<std::string, std::string, std::string>;
std::set<Grant> grants(const YAML::Node& role) {
  std::set<Grant> out;
  for (const auto& rule : role["rules"]) {
    for (const auto& field : rule) {
      const auto key = field.first.as<std::string>();
      if (key != "apiGroups" && key != "resources" && key != "verbs") {
        throw std::runtime_error("unexpected rule field " + key);
      }
    }
    for (const auto& g : rule["apiGroups"]) {
      for (const auto& r : rule["resources"]) {
        for (const auto& v : rule["verbs"]) {
          out.emplace(g.as<std::string>(), r.as<std::string>(), v.as<std::string>());
        }
      }
    }
  }
  return out;
}

// Exactly the rights docs/sources.md (RBAC) lists for the exporter.
std::set<Grant> expected_exporter_grants() {
  std::set<Grant> out;
  for (const char* verb : {"get", "list", "watch"}) {
    for (const char* r : {"modaljobs", "modalendpoints"}) {
      out.emplace("modal-operator.io", r, verb);
    }
    for (const char* r : {"pods", "events"}) out.emplace("", r, verb);
  }
  return out;
}

bool yaml_equal(const YAML::Node& a, const YAML::Node& b) {
  if (a.Type() != b.Type()) return false;
  switch (a.Type()) {
    case YAML::NodeType::Scalar:
      return a.Scalar() == b.Scalar();
    case YAML::NodeType::Sequence:
      if (a.size() != b.size()) return false;
      for (std::size_t i = 0; i < a.size(); ++i) {
        if (!yaml_equal(a[i], b[i])) return false;
      }
      return true;
    case YAML::NodeType::Map:
      if (a.size() != b.size()) return false;
      for (const auto& kv : a) {
        const auto key = kv.first.as<std::string>();
        if (!b[key] || !yaml_equal(kv.second, b[key])) return false;
      }
      return true;
    default:
      return true;
  }
}

// Every Secret the exporter container reads (env, envFrom, volumes) is one this install renders,
// or its reference is optional: a missing Secret must not keep the pod from starting.
void expect_exporter_secrets_created_or_optional(const Rendered& r) {
  std::set<std::string> created;
  for (const auto& s : r.all("Secret")) created.insert(s["metadata"]["name"].as<std::string>());
  const auto exporter = r.container("modal-exporter");
  auto check = [&](const YAML::Node& ref, const std::string& name_key, const std::string& what) {
    const auto name = ref[name_key].as<std::string>();
    const bool optional = ref["optional"] && ref["optional"].as<bool>();
    EXPECT_TRUE(created.count(name) == 1 || optional)
        << what << " reads Secret " << name << ", which this install does not create, and is "
        << "not optional";
  };
  for (const auto& e : exporter["env"]) {
    if (e["valueFrom"] && e["valueFrom"]["secretKeyRef"]) {
      check(e["valueFrom"]["secretKeyRef"], "name", "env " + e["name"].as<std::string>());
    }
  }
  for (const auto& e : exporter["envFrom"]) {
    if (e["secretRef"]) check(e["secretRef"], "name", "envFrom");
  }
  std::set<std::string> mounted;
  for (const auto& m : exporter["volumeMounts"]) mounted.insert(m["name"].as<std::string>());
  for (const auto& v : r.pod_spec()["volumes"]) {
    if (v["secret"] && mounted.count(v["name"].as<std::string>())) {
      check(v["secret"], "secretName", "volume " + v["name"].as<std::string>());
    }
  }
}

std::string default_container(const Rendered& r) {
  const auto a = r.workload()["spec"]["template"]["metadata"]["annotations"];
  return a["kubectl.kubernetes.io/default-container"].as<std::string>("");
}

mx::Config exporter_config(const Rendered& r) {
  const auto cm = r.named("ConfigMap", "modal-operator-exporter");
  return mx::parse_config(cm["data"]["modal-exporter.yaml"].as<std::string>(), "ConfigMap");
}

const std::string kConfigMount = "/etc/modal-exporter";
const std::string kStateMount = "/var/lib/modal-exporter";

// The hardening every rendered pod keeps (sidecar and sharded mode alike).
void expect_hardened(const Rendered& r) {
  for (const auto& name : r.container_names()) {
    SCOPED_TRACE(name);
    const auto sc = r.container(name)["securityContext"];
    EXPECT_TRUE(sc["runAsNonRoot"].as<bool>());
    EXPECT_TRUE(sc["readOnlyRootFilesystem"].as<bool>());
    EXPECT_FALSE(sc["allowPrivilegeEscalation"].as<bool>());
    EXPECT_EQ(strings(sc["capabilities"]["drop"]), std::vector<std::string>{"ALL"});
    EXPECT_FALSE(sc["capabilities"]["add"]);
    EXPECT_EQ(sc["seccompProfile"]["type"].as<std::string>(), "RuntimeDefault");
    EXPECT_FALSE(sc["privileged"] && sc["privileged"].as<bool>());
  }
  const auto pod = r.pod_spec()["securityContext"];
  EXPECT_TRUE(pod["runAsNonRoot"].as<bool>());
  EXPECT_NE(pod["runAsUser"].as<int>(), 0);
  EXPECT_EQ(pod["seccompProfile"]["type"].as<std::string>(), "RuntimeDefault");
}

void expect_resources(const Rendered& r) {
  const auto res = r.container("modal-exporter")["resources"];
  for (const char* kind : {"requests", "limits"}) {
    for (const char* what : {"cpu", "memory"}) {
      EXPECT_TRUE(res[kind][what]) << kind << "." << what;
    }
  }
}

void expect_probes(const Rendered& r) {
  const auto exporter = r.container("modal-exporter");
  EXPECT_EQ(exporter["livenessProbe"]["httpGet"]["path"].as<std::string>(), "/healthz");
  EXPECT_EQ(exporter["livenessProbe"]["httpGet"]["port"].as<std::string>(), "metrics");
  EXPECT_EQ(exporter["readinessProbe"]["httpGet"]["path"].as<std::string>(), "/readyz");
  EXPECT_EQ(exporter["readinessProbe"]["httpGet"]["port"].as<std::string>(), "metrics");
}

// The exporter's config on a read-only mount, its state on a writable emptyDir.
void expect_config_and_state_volumes(const Rendered& r) {
  const auto exporter = r.container("modal-exporter");
  const auto volumes = r.pod_spec()["volumes"];
  const auto cfg_mount = find_by(exporter["volumeMounts"], "mountPath", kConfigMount);
  EXPECT_TRUE(cfg_mount["readOnly"].as<bool>());
  const auto cfg_vol = find_by(volumes, "name", cfg_mount["name"].as<std::string>());
  EXPECT_EQ(cfg_vol["configMap"]["name"].as<std::string>(),
            r.named("ConfigMap", "modal-operator-exporter")["metadata"]["name"].as<std::string>());
  const auto state_mount = find_by(exporter["volumeMounts"], "mountPath", kStateMount);
  EXPECT_FALSE(state_mount["readOnly"] && state_mount["readOnly"].as<bool>());
  const auto state_vol = find_by(volumes, "name", state_mount["name"].as<std::string>());
  EXPECT_TRUE(state_vol["emptyDir"].IsDefined());
  // The config is rolled out with the pod.
  EXPECT_TRUE(
      r.workload()["spec"]["template"]["metadata"]["annotations"]["checksum/exporter-config"]);
}

// ---------------------------------------------------------------- default values

class DefaultChart : public ::testing::Test {
 protected:
  Rendered r{"default"};
};

TEST_F(DefaultChart, OperatorWithExporterSidecar) {
  EXPECT_EQ(r.container_names(), (std::vector<std::string>{"modal-operator", "modal-exporter"}));
  const auto exporter = r.container("modal-exporter");
  EXPECT_EQ(exporter["image"].as<std::string>().rfind("modal-exporter:", 0), 0u);
  const auto args = exporter["args"];
  EXPECT_TRUE(has_string(args, "--config=" + kConfigMount + "/modal-exporter.yaml"));
  EXPECT_TRUE(has_string(args, "--state.file=" + kStateMount + "/state.json"));
  EXPECT_TRUE(has_string(args, "--web.listen-address=:8081"));
}

TEST_F(DefaultChart, MetricsPortAndProbes) {
  const auto exporter = r.container("modal-exporter");
  ASSERT_EQ(exporter["ports"].size(), 1u);
  EXPECT_EQ(exporter["ports"][0]["name"].as<std::string>(), "metrics");
  EXPECT_EQ(exporter["ports"][0]["containerPort"].as<int>(), 8081);
  EXPECT_EQ(exporter["ports"][0]["protocol"].as<std::string>(), "TCP");
  expect_probes(r);
}

TEST_F(DefaultChart, HardenedSecurityContext) {
  expect_hardened(r);
}

TEST_F(DefaultChart, ResourceRequestsAndLimits) {
  expect_resources(r);
}

TEST_F(DefaultChart, NoServiceMonitorOrPrometheusRuleWithoutTheMonitoringApi) {
  // helm template without --api-versions monitoring.coreos.com/v1: a cluster without
  // prometheus-operator, where these kinds would fail the install.
  EXPECT_TRUE(r.all("ServiceMonitor").empty());
  EXPECT_TRUE(r.all("PrometheusRule").empty());
  // Annotation-based discovery still finds the Service.
  EXPECT_EQ(r.one("Service")["metadata"]["annotations"]["prometheus.io/scrape"].as<std::string>(),
            "true");
}

TEST_F(DefaultChart, DefaultContainerIsTheOperator) {
  EXPECT_EQ(default_container(r), "modal-operator");
}

TEST_F(DefaultChart, StartsWithoutAnyModalSecret) {
  // No Secret is created by default and none is assumed to exist.
  EXPECT_TRUE(r.all("Secret").empty());
  expect_exporter_secrets_created_or_optional(r);
  // The operator's references are optional too: the pod starts; NOTES.txt says what to create.
  const auto op = r.container("modal-operator");
  EXPECT_TRUE(env_var(op, "MODAL_TOKEN_ID")["valueFrom"]["secretKeyRef"]["optional"].as<bool>());
}

TEST_F(DefaultChart, EnvFromDownwardApiAndTheOperatorsSecret) {
  const auto exporter = r.container("modal-exporter");
  EXPECT_EQ(env_var(exporter, "POD_NAME")["valueFrom"]["fieldRef"]["fieldPath"].as<std::string>(),
            "metadata.name");
  EXPECT_EQ(
      env_var(exporter, "POD_NAMESPACE")["valueFrom"]["fieldRef"]["fieldPath"].as<std::string>(),
      "metadata.namespace");
  const auto op = r.container("modal-operator");
  for (const char* name : {"MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET"}) {
    SCOPED_TRACE(name);
    const auto mine = env_var(exporter, name)["valueFrom"]["secretKeyRef"];
    const auto theirs = env_var(op, name)["valueFrom"]["secretKeyRef"];
    ASSERT_TRUE(mine && theirs);
    EXPECT_EQ(mine["name"].as<std::string>(), theirs["name"].as<std::string>());
    EXPECT_EQ(mine["key"].as<std::string>(), theirs["key"].as<std::string>());
    EXPECT_FALSE(env_var(exporter, name)["value"]) << "a token must never be inlined";
    EXPECT_EQ(mine["name"].as<std::string>(), "modal-operator-modal-token");
  }
}

TEST_F(DefaultChart, ConfigFromConfigMapAndStateOnEmptyDir) {
  expect_config_and_state_volumes(r);
}

TEST_F(DefaultChart, ConfigMapIsAValidExporterConfig) {
  const mx::Config c = exporter_config(r);  // throws mx::ConfigError on any unknown/bad key
  EXPECT_EQ(c.web.listen_address, ":8081");
  EXPECT_EQ(c.web.telemetry_path, "/metrics");
  EXPECT_EQ(c.state_file, kStateMount + "/state.json");
  EXPECT_TRUE(c.kubernetes.namespaces.empty());
  EXPECT_EQ(c.kubernetes.operator_container, "modal-operator");
  EXPECT_TRUE(c.kubernetes.enabled);
  EXPECT_TRUE(c.modal.enabled);
  EXPECT_EQ(c.modal.environment, "main");
}

TEST_F(DefaultChart, ServiceWithMetricsPort) {
  const auto svc = r.one("Service");
  EXPECT_EQ(svc["metadata"]["labels"]["app.kubernetes.io/name"].as<std::string>(),
            "modal-operator");
  // metrics.labels of the modal-operator metrics documentation.
  EXPECT_EQ(svc["metadata"]["labels"]["prometheus.io/scrape"].as<std::string>(), "true");
  const auto port = find_by(svc["spec"]["ports"], "name", "metrics");
  EXPECT_EQ(port["port"].as<int>(), 8081);
  EXPECT_EQ(port["targetPort"].as<std::string>(), "metrics");
  // The selector picks the Deployment's pods.
  const auto pod_labels = r.one("Deployment")["spec"]["template"]["metadata"]["labels"];
  for (const auto& kv : svc["spec"]["selector"]) {
    const auto key = kv.first.as<std::string>();
    ASSERT_TRUE(pod_labels[key]) << key;
    EXPECT_EQ(pod_labels[key].as<std::string>(), kv.second.as<std::string>());
  }
  EXPECT_EQ(r.one("Deployment")["metadata"]["name"].as<std::string>(), "modal-operator");
  EXPECT_EQ(svc["metadata"]["name"].as<std::string>(), "modal-operator");
}

// The default values on a cluster that serves monitoring.coreos.com/v1.
class DefaultChartWithMonitoringApi : public ::testing::Test {
 protected:
  Rendered r{"default-crds"};
};

TEST_F(DefaultChartWithMonitoringApi, ServiceMonitor) {
  const auto sm = r.one("ServiceMonitor");
  EXPECT_EQ(sm["apiVersion"].as<std::string>(), "monitoring.coreos.com/v1");
  ASSERT_EQ(sm["spec"]["endpoints"].size(), 1u);
  const auto ep = sm["spec"]["endpoints"][0];
  EXPECT_EQ(ep["port"].as<std::string>(), "metrics");
  EXPECT_EQ(ep["path"].as<std::string>(), "/metrics");
  EXPECT_EQ(ep["interval"].as<std::string>(), "30s");
  EXPECT_EQ(ep["scrapeTimeout"].as<std::string>(), "10s");
  EXPECT_TRUE(ep["honorLabels"].as<bool>());
  const auto svc_labels = r.one("Service")["metadata"]["labels"];
  for (const auto& kv : sm["spec"]["selector"]["matchLabels"]) {
    const auto key = kv.first.as<std::string>();
    ASSERT_TRUE(svc_labels[key]) << key;
    EXPECT_EQ(svc_labels[key].as<std::string>(), kv.second.as<std::string>());
  }
  EXPECT_EQ(sm["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"].as<std::string>(),
            "modal-operator");
}

TEST_F(DefaultChartWithMonitoringApi, PrometheusRuleIsTheMonitoringRuleFile) {
  const auto rule = r.one("PrometheusRule");
  EXPECT_EQ(rule["metadata"]["name"].as<std::string>(), "modal-operator-alerts");
  const auto source =
      YAML::Load(read_file(std::string(MX_SOURCE_DIR) + "/monitoring/prometheus-rules.yaml"));
  EXPECT_TRUE(yaml_equal(rule["spec"], source))
      << "the PrometheusRule's spec differs from monitoring/prometheus-rules.yaml:\n"
      << rule["spec"];
  EXPECT_EQ(rule["metadata"]["namespace"].as<std::string>(), "modal-system");
  // Alert templates reach Prometheus untouched by Helm.
  const auto first = rule["spec"]["groups"][0]["rules"][0];
  EXPECT_NE(first["annotations"]["description"].as<std::string>().find("{{ $value"),
            std::string::npos);
}

TEST_F(DefaultChartWithMonitoringApi, NoDashboardConfigMapUnlessAsked) {
  EXPECT_THROW(r.named("ConfigMap", "modal-operator-dashboard"), std::runtime_error);
}

// metrics.assumeMonitoringCRDs renders them without the API (offline rendering).
TEST(CrdsAssumedChart, ServiceMonitorAndPrometheusRuleRendered) {
  Rendered r("crds-assumed");
  EXPECT_NO_THROW(r.one("ServiceMonitor"));
  EXPECT_NO_THROW(r.one("PrometheusRule"));
}

TEST_F(DefaultChart, ClusterWideReadOnlyRbacForTheExporter) {
  const auto role = r.named("ClusterRole", "modal-operator-exporter");
  EXPECT_EQ(grants(role), expected_exporter_grants());
  const auto binding = r.named("ClusterRoleBinding", "modal-operator-exporter");
  EXPECT_EQ(binding["roleRef"]["kind"].as<std::string>(), "ClusterRole");
  EXPECT_EQ(binding["roleRef"]["name"].as<std::string>(), "modal-operator-exporter");
  ASSERT_EQ(binding["subjects"].size(), 1u);
  EXPECT_EQ(binding["subjects"][0]["kind"].as<std::string>(), "ServiceAccount");
  EXPECT_EQ(binding["subjects"][0]["name"].as<std::string>(),
            r.pod_spec()["serviceAccountName"].as<std::string>());
  EXPECT_EQ(binding["subjects"][0]["namespace"].as<std::string>(), "modal-system");
  EXPECT_EQ(r.one("ServiceAccount")["metadata"]["name"].as<std::string>(),
            r.pod_spec()["serviceAccountName"].as<std::string>());
  EXPECT_TRUE(r.all("Role").empty());
  EXPECT_TRUE(r.all("RoleBinding").empty());
  // The operator's own rights live in a separate role.
  EXPECT_NO_THROW(r.named("ClusterRole", "modal-operator-operator"));
  EXPECT_EQ(r.all("ClusterRole").size(), 2u);
}

TEST_F(DefaultChart, NoCustomResourceDefinitions) {
  EXPECT_TRUE(r.all("CustomResourceDefinition").empty());
}

// ---------------------------------------------------------------- other values

TEST(StandaloneChart, ExporterAloneWhenTheOperatorIsDisabled) {
  Rendered r("standalone");
  EXPECT_EQ(r.container_names(), std::vector<std::string>{"modal-exporter"});
  EXPECT_EQ(grants(r.named("ClusterRole", "modal-operator-exporter")), expected_exporter_grants());
  EXPECT_EQ(r.all("ClusterRole").size(), 1u) << "no operator role without the operator";
  EXPECT_EQ(r.one("ServiceMonitor")["spec"]["endpoints"][0]["port"].as<std::string>(), "metrics");
  const auto exporter = r.container("modal-exporter");
  EXPECT_TRUE(env_var(exporter, "MODAL_TOKEN_ID")["valueFrom"]["secretKeyRef"]);
  EXPECT_NO_THROW(exporter_config(r));
  EXPECT_EQ(default_container(r), "modal-exporter");
  expect_exporter_secrets_created_or_optional(r);
}

TEST(OneNamespaceChart, RoleInsteadOfClusterRole) {
  Rendered r("one-namespace");
  EXPECT_TRUE(r.all("ClusterRoleBinding").size() == 1u);  // the operator's only
  EXPECT_THROW(r.named("ClusterRole", "modal-operator-exporter"), std::runtime_error);
  const auto roles = r.all("Role");
  ASSERT_EQ(roles.size(), 1u);
  EXPECT_EQ(roles[0]["metadata"]["namespace"].as<std::string>(), "modal-system");
  EXPECT_EQ(grants(roles[0]), expected_exporter_grants());
  const auto binding = r.one("RoleBinding");
  EXPECT_EQ(binding["metadata"]["namespace"].as<std::string>(), "modal-system");
  EXPECT_EQ(binding["roleRef"]["kind"].as<std::string>(), "Role");
  EXPECT_EQ(binding["roleRef"]["name"].as<std::string>(),
            roles[0]["metadata"]["name"].as<std::string>());
  EXPECT_EQ(exporter_config(r).kubernetes.namespaces, std::vector<std::string>{"modal-system"});
}

TEST(TwoNamespacesChart, RolePerWatchedNamespaceAndTheReleaseNamespace) {
  Rendered r("two-namespaces");
  std::set<std::string> role_ns, binding_ns;
  for (const auto& role : r.all("Role")) {
    role_ns.insert(role["metadata"]["namespace"].as<std::string>());
    EXPECT_EQ(grants(role), expected_exporter_grants());
  }
  for (const auto& b : r.all("RoleBinding")) {
    binding_ns.insert(b["metadata"]["namespace"].as<std::string>());
    EXPECT_EQ(b["subjects"][0]["namespace"].as<std::string>(), "modal-system");
  }
  const std::set<std::string> want{"modal-system", "team-a", "team-b"};
  EXPECT_EQ(role_ns, want);
  EXPECT_EQ(binding_ns, want);
  EXPECT_EQ(exporter_config(r).kubernetes.namespaces,
            (std::vector<std::string>{"team-a", "team-b"}));
}

TEST(MetricsDisabledChart, NoServiceMonitorNoRulesExporterStillRuns) {
  Rendered r("metrics-disabled");
  EXPECT_TRUE(r.all("ServiceMonitor").empty());
  EXPECT_TRUE(r.all("PrometheusRule").empty());
  EXPECT_FALSE(r.one("Service")["metadata"]["annotations"]["prometheus.io/scrape"]);
  EXPECT_NO_THROW(r.container("modal-exporter"));
}

TEST(CustomValuesChart, ValuesReachTheManifests) {
  Rendered r("custom");
  const auto ep = r.one("ServiceMonitor")["spec"]["endpoints"][0];
  EXPECT_EQ(ep["interval"].as<std::string>(), "15s");
  EXPECT_EQ(ep["scrapeTimeout"].as<std::string>(), "5s");
  EXPECT_EQ(ep["path"].as<std::string>(), "/exporter-metrics");
  EXPECT_TRUE(ep["honorLabels"].as<bool>());
  for (const char* kind : {"ServiceMonitor", "PrometheusRule", "Service"}) {
    EXPECT_EQ(r.one(kind)["metadata"]["labels"]["release"].as<std::string>(), "prom") << kind;
  }
  const auto exporter = r.container("modal-exporter");
  EXPECT_EQ(exporter["ports"][0]["containerPort"].as<int>(), 9100);
  EXPECT_EQ(find_by(r.one("Service")["spec"]["ports"], "name", "metrics")["port"].as<int>(), 9100);
  EXPECT_TRUE(has_string(exporter["args"], "--web.listen-address=:9100"));
  EXPECT_EQ(exporter["image"].as<std::string>(), "registry.example/modal-exporter:1.2.3");
  EXPECT_EQ(r.container("operator")["image"].as<std::string>(),
            "registry.example/modal-operator@sha256:"
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
  EXPECT_EQ(default_container(r), "operator");
  const mx::Config c = exporter_config(r);
  EXPECT_EQ(c.web.telemetry_path, "/exporter-metrics");
  EXPECT_FALSE(c.modal.enabled);
  EXPECT_EQ(c.modal.environment, "staging");
  EXPECT_EQ(c.kubernetes.operator_container, "operator");
  EXPECT_EQ(r.container_names(), (std::vector<std::string>{"operator", "modal-exporter"}));
  EXPECT_EQ(env_var(r.container("operator"), "MODAL_ENVIRONMENT")["value"].as<std::string>(),
            "staging");
  // exporter.config is merged over the file's defaults: the keys not given keep them.
  EXPECT_EQ(c.modal.max_calls_per_second, 2);
  EXPECT_EQ(c.web.gzip_level, 6);
}

TEST(CustomValuesChart, PodValues) {
  Rendered r("custom");
  const auto spec = r.workload()["spec"];
  EXPECT_EQ(spec["revisionHistoryLimit"].as<int>(), 3);
  const auto pod = r.pod_spec();
  EXPECT_EQ(pod["topologySpreadConstraints"][0]["topologyKey"].as<std::string>(),
            "topology.kubernetes.io/zone");
  EXPECT_EQ(find_by(pod["volumes"], "name", "ca-bundle")["configMap"]["name"].as<std::string>(),
            "ca-bundle");
  EXPECT_EQ(find_by(r.container("modal-exporter")["volumeMounts"], "name", "ca-bundle")["mountPath"]
                .as<std::string>(),
            "/etc/ssl/custom");
}

TEST(CustomValuesChart, CommonLabelsOnEveryObjectAndPod) {
  Rendered r("custom");
  for (const char* kind : {"ServiceAccount", "ConfigMap", "ClusterRole", "ClusterRoleBinding",
                           "Service", "Deployment", "PrometheusRule", "ServiceMonitor"}) {
    for (const auto& o : r.all(kind)) {
      EXPECT_EQ(o["metadata"]["labels"]["team"].as<std::string>(""), "ml-platform") << kind;
    }
  }
  EXPECT_EQ(r.workload()["spec"]["template"]["metadata"]["labels"]["team"].as<std::string>(""),
            "ml-platform");
}

TEST(CustomValuesChart, ServiceMonitorNamespaceAndJobLabel) {
  Rendered r("custom");
  const auto sm = r.one("ServiceMonitor");
  EXPECT_EQ(sm["metadata"]["namespace"].as<std::string>(), "monitoring");
  EXPECT_EQ(sm["spec"]["jobLabel"].as<std::string>(), "app.kubernetes.io/instance");
  // From another namespace it still selects the Service in the release namespace.
  EXPECT_EQ(strings(sm["spec"]["namespaceSelector"]["matchNames"]),
            std::vector<std::string>{"modal-system"});
}

// Thresholds, job selector and runbook base URL are values of the PrometheusRule.
TEST(CustomValuesChart, RuleThresholdsAndSelectorFromValues) {
  Rendered r("custom");
  const auto rule = r.one("PrometheusRule");
  EXPECT_EQ(rule["metadata"]["namespace"].as<std::string>(), "monitoring");
  std::map<std::string, YAML::Node> alerts;
  for (const auto& g : rule["spec"]["groups"]) {
    for (const auto& a : g["rules"]) {
      if (a["alert"]) alerts.emplace(a["alert"].as<std::string>(), YAML::Node(a));
    }
  }
  auto expr = [&](const std::string& name) { return alerts.at(name)["expr"].as<std::string>(); };
  EXPECT_NE(expr("ModalJobFailureRate").find("> 0.25"), std::string::npos);
  EXPECT_NE(expr("ModalJobQueueTimeHigh").find("> 300"), std::string::npos);
  EXPECT_NE(expr("ModalHighCost").find("> 250"), std::string::npos);
  EXPECT_EQ(expr("ModalOperatorDown"), "up{job=\"modal-operator\"} == 0");
  EXPECT_EQ(expr("ModalExporterAbsent"), "absent(up{job=\"modal-operator\"})");
  // Thresholds not given keep their defaults.
  EXPECT_NE(expr("HighErrorRate").find("> 0.05"), std::string::npos);
  EXPECT_NE(alerts.at("ModalJobFailureRate")["annotations"]["description"].as<std::string>().find(
                "(threshold 25%)"),
            std::string::npos);
  for (const auto& [name, a] : alerts) {
    std::string lower = name;
    for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    EXPECT_EQ(a["annotations"]["runbook_url"].as<std::string>(),
              "https://wiki.example/runbooks.md#" + lower);
  }
}

TEST(CustomValuesChart, DashboardConfigMapForGrafanasSidecar) {
  Rendered r("custom");
  const auto cm = r.named("ConfigMap", "modal-operator-dashboard");
  EXPECT_EQ(cm["metadata"]["labels"]["grafana_dashboard"].as<std::string>(), "1");
  const auto json = cm["data"]["modal-operator.json"].as<std::string>();
  const auto file = read_file(std::string(MX_SOURCE_DIR) + "/monitoring/grafana-dashboard.json");
  // Same text up to the trailing newline YAML's `|-` strips.
  EXPECT_EQ(json + "\n", file);
}

TEST(TokenSecretChart, CreatedSecretIsTheOneBothContainersUse) {
  Rendered r("token-secret");
  const auto secret = r.one("Secret");
  const auto name = secret["metadata"]["name"].as<std::string>();
  EXPECT_EQ(name, "modal-operator-modal-token");
  EXPECT_TRUE(secret["data"]["token-id"]);
  EXPECT_TRUE(secret["data"]["token-secret"]);
  for (const char* c : {"modal-operator", "modal-exporter"}) {
    EXPECT_EQ(env_var(r.container(c), "MODAL_TOKEN_ID")["valueFrom"]["secretKeyRef"]["name"]
                  .as<std::string>(),
              name)
        << c;
  }
  // The operator's Secret exists: a wrong key must stop it rather than run it without a token.
  EXPECT_FALSE(env_var(r.container("modal-operator"),
                       "MODAL_TOKEN_ID")["valueFrom"]["secretKeyRef"]["optional"]
                   .as<bool>());
  expect_exporter_secrets_created_or_optional(r);
}

TEST(ExistingSecretChart, BothContainersReadTheNamedSecret) {
  Rendered r("existing-secret");
  EXPECT_TRUE(r.all("Secret").empty());
  for (const char* c : {"modal-operator", "modal-exporter"}) {
    for (const char* var : {"MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET"}) {
      EXPECT_EQ(env_var(r.container(c), var)["valueFrom"]["secretKeyRef"]["name"].as<std::string>(),
                "modal-token")
          << c << " " << var;
    }
  }
  // The exporter serves the Kubernetes metrics even when the named Secret is missing.
  expect_exporter_secrets_created_or_optional(r);
}

// ---------------------------------------------------------------- sharded mode

// A label selector (matchLabels) picks the labels of the StatefulSet's pods.
void expect_selects_pods(const YAML::Node& match_labels, const Rendered& r) {
  const auto pod_labels = r.workload()["spec"]["template"]["metadata"]["labels"];
  ASSERT_TRUE(match_labels.IsMap() && match_labels.size() > 0);
  for (const auto& kv : match_labels) {
    const auto key = kv.first.as<std::string>();
    ASSERT_TRUE(pod_labels[key]) << key;
    EXPECT_EQ(pod_labels[key].as<std::string>(), kv.second.as<std::string>());
  }
}

// values-sharded.yaml: 3 shards, hard anti-affinity, port 9100.
class ShardedChart : public ::testing::Test {
 protected:
  Rendered r{"sharded"};
};

TEST_F(ShardedChart, StatefulSetOfExportersInsteadOfTheDeployment) {
  EXPECT_TRUE(r.all("Deployment").empty());
  const auto sts = r.one("StatefulSet");
  EXPECT_EQ(sts["apiVersion"].as<std::string>(), "apps/v1");
  EXPECT_EQ(sts["spec"]["replicas"].as<int>(), 3);
  EXPECT_EQ(sts["spec"]["podManagementPolicy"].as<std::string>(), "Parallel");
  expect_selects_pods(sts["spec"]["selector"]["matchLabels"], r);
  EXPECT_EQ(r.container_names(), std::vector<std::string>{"modal-exporter"});
  EXPECT_EQ(r.all("ClusterRole").size(), 1u) << "no operator role without the operator";
  EXPECT_EQ(grants(r.named("ClusterRole", "modal-operator-exporter")), expected_exporter_grants());
}

// Every pod's shard is its ordinal: the args are real exporter flags, and the pod names the
// StatefulSet gives (<name>-0 .. <name>-N-1) map one-to-one onto shards 0..N-1.
TEST_F(ShardedChart, EachPodTakesItsShardFromItsOrdinal) {
  const auto sts = r.one("StatefulSet");
  const auto exporter = r.container("modal-exporter");
  std::vector<std::string> args{"modal-exporter"};
  for (const auto& a : strings(exporter["args"])) args.push_back(a);
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  const mx::Flags flags = mx::parse_flags(static_cast<int>(argv.size()), argv.data());
  EXPECT_TRUE(flags.shard_from_pod_name);
  EXPECT_FALSE(flags.shard) << "a fixed --shard would give every pod the same shard";
  ASSERT_TRUE(flags.total_shards);
  const int replicas = sts["spec"]["replicas"].as<int>();
  EXPECT_EQ(*flags.total_shards, replicas);
  const auto name = sts["metadata"]["name"].as<std::string>();
  for (int i = 0; i < replicas; ++i) {
    EXPECT_EQ(mx::pod_ordinal(name + "-" + std::to_string(i)), i);
  }
  EXPECT_EQ(env_var(exporter, "POD_NAME")["valueFrom"]["fieldRef"]["fieldPath"].as<std::string>(),
            "metadata.name");
  EXPECT_TRUE(env_var(exporter, "MODAL_TOKEN_ID")["valueFrom"]["secretKeyRef"]);
  EXPECT_FALSE(env_var(exporter, "MODAL_TOKEN_ID")["value"]) << "a token must never be inlined";
  // The file keeps the unsharded default; the flags set the shard.
  EXPECT_NO_THROW(exporter_config(r));
}

TEST_F(ShardedChart, SameHardeningAsTheSidecar) {
  expect_hardened(r);
  expect_resources(r);
  expect_probes(r);
  expect_config_and_state_volumes(r);
  EXPECT_EQ(r.pod_spec()["securityContext"]["runAsUser"].as<int>(), 65532);
}

TEST_F(ShardedChart, HeadlessServiceScrapedPerShardByTheServiceMonitor) {
  const auto svc = r.one("Service");  // one Service: no shard is scraped twice
  EXPECT_EQ(svc["spec"]["clusterIP"].as<std::string>(), "None");
  EXPECT_EQ(r.one("StatefulSet")["spec"]["serviceName"].as<std::string>(),
            svc["metadata"]["name"].as<std::string>());
  expect_selects_pods(svc["spec"]["selector"], r);
  const auto port = find_by(svc["spec"]["ports"], "name", "metrics");
  EXPECT_EQ(port["port"].as<int>(), 9100);
  EXPECT_EQ(r.container("modal-exporter")["ports"][0]["containerPort"].as<int>(), 9100);
  const auto sm = r.one("ServiceMonitor");
  const auto svc_labels = svc["metadata"]["labels"];
  for (const auto& kv : sm["spec"]["selector"]["matchLabels"]) {
    const auto key = kv.first.as<std::string>();
    ASSERT_TRUE(svc_labels[key]) << key;
    EXPECT_EQ(svc_labels[key].as<std::string>(), kv.second.as<std::string>());
  }
  EXPECT_EQ(sm["spec"]["endpoints"][0]["port"].as<std::string>(), "metrics");
  EXPECT_TRUE(sm["spec"]["endpoints"][0]["honorLabels"].as<bool>());
}

TEST_F(ShardedChart, PodDisruptionBudgetKeepsAllButOneShard) {
  const auto pdb = r.one("PodDisruptionBudget");
  EXPECT_EQ(pdb["apiVersion"].as<std::string>(), "policy/v1");
  EXPECT_EQ(pdb["spec"]["maxUnavailable"].as<int>(), 1);
  expect_selects_pods(pdb["spec"]["selector"]["matchLabels"], r);
}

TEST_F(ShardedChart, HardAntiAffinitySpreadsShardsOverNodes) {
  const auto anti = r.pod_spec()["affinity"]["podAntiAffinity"];
  ASSERT_TRUE(anti["requiredDuringSchedulingIgnoredDuringExecution"]);
  EXPECT_FALSE(anti["preferredDuringSchedulingIgnoredDuringExecution"]);
  const auto term = anti["requiredDuringSchedulingIgnoredDuringExecution"][0];
  EXPECT_EQ(term["topologyKey"].as<std::string>(), "kubernetes.io/hostname");
  expect_selects_pods(term["labelSelector"]["matchLabels"], r);
}

TEST(ShardedDefaultsChart, TwoShardsPreferredAntiAffinity) {
  Rendered r("sharded-defaults");
  EXPECT_TRUE(r.all("Deployment").empty());
  EXPECT_EQ(r.one("StatefulSet")["spec"]["replicas"].as<int>(), 2);
  EXPECT_TRUE(has_string(r.container("modal-exporter")["args"], "--total-shards=2"));
  const auto anti = r.pod_spec()["affinity"]["podAntiAffinity"];
  EXPECT_FALSE(anti["requiredDuringSchedulingIgnoredDuringExecution"]);
  const auto pref = anti["preferredDuringSchedulingIgnoredDuringExecution"][0];
  EXPECT_EQ(pref["podAffinityTerm"]["topologyKey"].as<std::string>(), "kubernetes.io/hostname");
  expect_selects_pods(pref["podAffinityTerm"]["labelSelector"]["matchLabels"], r);
  expect_hardened(r);
  EXPECT_NO_THROW(r.one("PodDisruptionBudget"));
  EXPECT_EQ(default_container(r), "modal-exporter");
  expect_exporter_secrets_created_or_optional(r);
}

// ---------------------------------------------------------------- TLS and basic auth

// values-tls.yaml: /metrics over TLS (client certificates verified when given) and basic auth,
// wired the same way in the sidecar and in the sharded StatefulSet.
const std::string kWebConfigMount = "/etc/modal-exporter-web";
const std::string kTlsMount = "/etc/modal-exporter-tls";

// The volume behind one of the exporter's mounts, which must be read-only.
YAML::Node mounted_volume(const Rendered& r, const std::string& mount_path) {
  const auto mount =
      find_by(r.container("modal-exporter")["volumeMounts"], "mountPath", mount_path);
  EXPECT_TRUE(mount["readOnly"] && mount["readOnly"].as<bool>()) << mount_path;
  return find_by(r.pod_spec()["volumes"], "name", mount["name"].as<std::string>());
}

void expect_web_config_wiring(const Rendered& r) {
  const auto exporter = r.container("modal-exporter");
  EXPECT_TRUE(
      has_string(exporter["args"], "--web.config.file=" + kWebConfigMount + "/web-config.yml"));
  const auto secret = r.named("Secret", "modal-operator-web-config");
  EXPECT_EQ(mounted_volume(r, kWebConfigMount)["secret"]["secretName"].as<std::string>(),
            secret["metadata"]["name"].as<std::string>());
  EXPECT_EQ(mounted_volume(r, kTlsMount)["secret"]["secretName"].as<std::string>(), "exporter-tls");
  // The file the exporter reads, through its own parser: certificate, key and client CA from
  // the TLS Secret's mount, the basic auth user, the probes' paths left open.
  const mx::WebSecurityConfig web =
      mx::parse_web_config_text(secret["stringData"]["web-config.yml"].as<std::string>());
  EXPECT_TRUE(web.tls.enabled);
  EXPECT_EQ(web.tls.cert_file, kTlsMount + "/tls.crt");
  EXPECT_EQ(web.tls.key_file, kTlsMount + "/tls.key");
  EXPECT_EQ(web.tls.client_ca_file, kTlsMount + "/ca.crt");
  EXPECT_EQ(web.tls.client_auth, mx::ClientAuthType::verify_client_cert_if_given);
  EXPECT_EQ(web.basic_auth_users.count("prometheus"), 1u);
  // The kubelet probes over HTTPS, without credentials.
  for (const char* probe : {"livenessProbe", "readinessProbe"}) {
    SCOPED_TRACE(probe);
    const auto get = exporter[probe]["httpGet"];
    EXPECT_EQ(get["scheme"].as<std::string>(), "HTTPS");
    const auto path = get["path"].as<std::string>();
    EXPECT_NE(std::find(web.auth_excluded_paths.begin(), web.auth_excluded_paths.end(), path),
              web.auth_excluded_paths.end())
        << path << " needs basic auth, which the kubelet does not send";
  }
  // Prometheus scrapes over HTTPS, trusting the TLS Secret's CA, with basic auth.
  const auto ep = r.one("ServiceMonitor")["spec"]["endpoints"][0];
  EXPECT_EQ(ep["scheme"].as<std::string>(), "https");
  EXPECT_EQ(ep["tlsConfig"]["ca"]["secret"]["name"].as<std::string>(), "exporter-tls");
  EXPECT_EQ(ep["basicAuth"]["username"]["name"].as<std::string>(), "prom-creds");
}

TEST(TlsChart, SidecarServesMetricsOverTlsWithBasicAuth) {
  Rendered r("tls");
  EXPECT_FALSE(r.all("Deployment").empty());
  expect_web_config_wiring(r);
  expect_hardened(r);
  expect_config_and_state_volumes(r);
}

TEST(ShardedTlsChart, ShardsServeMetricsOverTlsWithBasicAuth) {
  Rendered r("sharded-tls");
  EXPECT_TRUE(r.all("Deployment").empty());
  EXPECT_EQ(r.one("StatefulSet")["spec"]["replicas"].as<int>(), 2);
  expect_web_config_wiring(r);
  expect_hardened(r);
  expect_resources(r);
  expect_config_and_state_volumes(r);
}

// Both modes run the same exporter container: only the shard flags differ, and the same
// volumes stand behind its mounts.
TEST(ShardedTlsChart, SameExporterContainerAsTheSidecar) {
  Rendered sidecar("tls"), sharded("sharded-tls");
  YAML::Node shard = YAML::Clone(sharded.container("modal-exporter"));
  YAML::Node args(YAML::NodeType::Sequence);
  for (const auto& a : strings(shard["args"])) {
    if (a != "--total-shards=2" && a != "--shard.from-pod-name") args.push_back(a);
  }
  EXPECT_EQ(args.size() + 2, shard["args"].size());
  shard["args"] = args;
  EXPECT_TRUE(yaml_equal(sidecar.container("modal-exporter"), shard))
      << "sidecar:\n"
      << sidecar.container("modal-exporter") << "\nsharded (shard flags removed):\n"
      << shard;
  for (const auto& mount : sidecar.container("modal-exporter")["volumeMounts"]) {
    const auto name = mount["name"].as<std::string>();
    SCOPED_TRACE(name);
    EXPECT_TRUE(yaml_equal(find_by(sidecar.pod_spec()["volumes"], "name", name),
                           find_by(sharded.pod_spec()["volumes"], "name", name)));
  }
}

// The sidecar (default) and standalone Deployment render no sharding objects.
TEST(UnshardedCharts, NoStatefulSetNoPodDisruptionBudget) {
  for (const char* scenario : {"default", "standalone"}) {
    SCOPED_TRACE(scenario);
    Rendered r(scenario);
    EXPECT_TRUE(r.all("StatefulSet").empty());
    EXPECT_TRUE(r.all("PodDisruptionBudget").empty());
    EXPECT_FALSE(r.one("Service")["spec"]["clusterIP"]);
    EXPECT_FALSE(has_string(r.container("modal-exporter")["args"], "--shard.from-pod-name"));
  }
}

// ---------------------------------------------------------------- the chart's own files

const std::string kChart = std::string(MX_SOURCE_DIR) + "/charts/modal-operator";

nlohmann::json values_schema() {
  return nlohmann::json::parse(read_file(kChart + "/values.schema.json"));
}

// A schema node with its $ref (only "#/definitions/NAME" is used) resolved.
const nlohmann::json& resolve(const nlohmann::json& root, const nlohmann::json& node) {
  if (!node.contains("$ref")) return node;
  const auto ref = node["$ref"].get<std::string>();
  const std::string prefix = "#/definitions/";
  if (ref.rfind(prefix, 0) != 0) throw std::runtime_error("unsupported $ref " + ref);
  return root["definitions"][ref.substr(prefix.size())];
}

bool strict_object(const nlohmann::json& node) {
  return node.contains("properties") && node.value("additionalProperties", true) == false;
}

// A misspelt key must fail: every object the schema lists properties of allows no others.
TEST(ChartSchema, EveryObjectWithPropertiesIsClosed) {
  const auto root = values_schema();
  EXPECT_TRUE(strict_object(root));
  std::function<void(const nlohmann::json&, const std::string&)> walk =
      [&](const nlohmann::json& node, const std::string& path) {
        if (!node.is_object()) return;
        if (node.contains("properties")) {
          EXPECT_EQ(node.value("additionalProperties", nlohmann::json(true)), false)
              << path << " lists properties but accepts others";
          for (const auto& [k, v] : node["properties"].items()) walk(v, path + "." + k);
        }
        if (node.contains("definitions")) {
          for (const auto& [k, v] : node["definitions"].items()) walk(v, "definitions." + k);
        }
      };
  walk(root, "");
}

// exporter.config is checked against the exporter's own keys: the schema's tree of
// exporter.config equals the tree of config/modal-exporter.yaml (which documents every key).
TEST(ChartSchema, ExporterConfigMirrorsTheConfigFile) {
  const auto root = values_schema();
  const auto file =
      YAML::Load(read_file(std::string(MX_SOURCE_DIR) + "/config/modal-exporter.yaml"));
  std::function<void(const nlohmann::json&, const YAML::Node&, const std::string&)> walk =
      [&](const nlohmann::json& schema, const YAML::Node& cfg, const std::string& path) {
        if (!schema.contains("properties")) return;  // a map of free keys (prices.gpu_per_hour)
        ASSERT_TRUE(cfg.IsMap()) << path << " is an object in the schema, not in the file";
        std::set<std::string> in_schema, in_file;
        for (const auto& [k, v] : schema["properties"].items()) in_schema.insert(k);
        for (const auto& kv : cfg) in_file.insert(kv.first.as<std::string>());
        EXPECT_EQ(in_schema, in_file) << "keys of " << path;
        for (const auto& k : in_file) {
          if (in_schema.count(k)) walk(schema["properties"][k], cfg[k], path + "." + k);
        }
      };
  walk(root["properties"]["exporter"]["properties"]["config"], file, "exporter.config");
}

// The value paths a user can set: descends into objects the schema closes (their keys are the
// chart's), stops at free-form ones (resources, labels, ...), sequences and scalars.
void value_paths(const nlohmann::json& root, const nlohmann::json& schema_node,
                 const YAML::Node& values, const std::string& prefix,
                 std::vector<std::string>& out) {
  const auto& schema = resolve(root, schema_node);
  if (values.IsMap() && values.size() > 0 && strict_object(schema)) {
    for (const auto& kv : values) {
      const auto key = kv.first.as<std::string>();
      ASSERT_TRUE(schema["properties"].contains(key)) << prefix + key << " is not in the schema";
      value_paths(root, schema["properties"][key], kv.second, prefix + key + ".", out);
    }
    return;
  }
  out.push_back(prefix.substr(0, prefix.size() - 1));
}

// The chart's README documents every value in its table: `| \`path\` | ...`. A value added to
// values.yaml without a row fails, and so does a row for a value that no longer exists.
TEST(ChartReadme, ValuesTableIsComplete) {
  const auto root = values_schema();
  const auto values = YAML::Load(read_file(kChart + "/values.yaml"));
  std::vector<std::string> paths;
  value_paths(root, root, values, "", paths);
  ASSERT_GT(paths.size(), 50u);
  const auto readme = read_file(kChart + "/README.md");
  std::set<std::string> rows;
  std::istringstream in(readme);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("| `", 0) != 0) continue;
    const auto end = line.find('`', 3);
    if (end != std::string::npos) rows.insert(line.substr(3, end - 3));
  }
  for (const auto& p : paths) EXPECT_EQ(rows.count(p), 1u) << p << " has no row in the README";
  const std::set<std::string> known(paths.begin(), paths.end());
  for (const auto& row : rows) EXPECT_EQ(known.count(row), 1u) << row << " is not a value";
}

}  // namespace
}  // namespace mx::testing
