// Structure of the shipped alert rules and Grafana dashboard (their PromQL is parsed by promtool
// and its metric names checked against a real scrape in other deploy tests).
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <array>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "promql_scan.h"

namespace mx::testing {
namespace {

std::string read_source(const std::string& rel) {
  const std::string path = std::string(MX_SOURCE_DIR) + "/" + rel;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The metric set of the modal-operator metrics documentation (docs/metrics.md); every one must
// be on the dashboard or in an alert, so none of them is exported without anyone looking at it.
const std::set<std::string> kDocumentedMetrics = {"modal_jobs_total",
                                                  "modal_jobs_active",
                                                  "modal_job_duration_seconds",
                                                  "modal_job_replicas",
                                                  "modal_job_queue_seconds",
                                                  "modal_function_cold_starts_total",
                                                  "modal_gpu_utilization",
                                                  "modal_network_bandwidth_mbps",
                                                  "modal_cost_estimate_usd",
                                                  "modal_i6pn_jobs_total",
                                                  "modal_operator_errors_total",
                                                  "modal_operator_restarts_total",
                                                  "modal_webhook_requests_total"};

std::string family(const std::string& name) {
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    const std::string s(suffix);
    if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0 &&
        name.rfind("modal_job_", 0) == 0) {
      return name.substr(0, name.size() - s.size());
    }
  }
  return name;
}

// The alerting rules of the standalone rule file (recording rules skipped).
std::vector<YAML::Node> alert_rules() {
  const auto root = YAML::Load(read_source("monitoring/prometheus-rules.yaml"));
  std::vector<YAML::Node> out;
  for (const auto& g : root["groups"]) {
    for (const auto& r : g["rules"]) {
      if (r["alert"]) out.push_back(r);
    }
  }
  return out;
}

TEST(AlertRules, EveryAlertHasSeverityForAndAnnotations) {
  std::set<std::string> alerts;
  for (const auto& r : alert_rules()) {
    const auto name = r["alert"].as<std::string>();
    EXPECT_TRUE(alerts.insert(name).second) << "duplicate alert " << name;
    EXPECT_TRUE(r["labels"]["severity"]) << name;
    EXPECT_FALSE(r["for"].as<std::string>("").empty()) << name << " has no for:";
    for (const char* a : {"summary", "description", "runbook_url"}) {
      EXPECT_FALSE(r["annotations"][a].as<std::string>("").empty()) << name << " has no " << a;
    }
    // The project's own alerts are Modal-prefixed; the documented HighErrorRate keeps its name.
    EXPECT_TRUE(name.rfind("Modal", 0) == 0 || name == "HighErrorRate") << name;
  }
  // The alerts of the modal-operator metrics documentation keep their name, severity, for: and
  // threshold (alert routing keys on them).
  const std::map<std::string, std::array<std::string, 3>> documented = {
      {"ModalJobFailureRate", {"warning", "2m", "> 0.1"}},
      {"ModalOperatorDown", {"critical", "1m", "== 0"}},
      {"HighErrorRate", {"warning", "2m", "> 0.05"}}};
  for (const auto& r : alert_rules()) {
    const auto it = documented.find(r["alert"].as<std::string>());
    if (it == documented.end()) continue;
    EXPECT_EQ(r["labels"]["severity"].as<std::string>(), it->second[0]) << it->first;
    EXPECT_EQ(r["for"].as<std::string>(), it->second[1]) << it->first;
    EXPECT_NE(r["expr"].as<std::string>().find(it->second[2]), std::string::npos) << it->first;
  }
  // The documentation's alerts and alerting queries, plus the exporter's own health.
  for (const char* want :
       {"ModalJobFailureRate", "ModalOperatorDown", "HighErrorRate", "ModalJobQueueTimeHigh",
        "ModalHighColdStartRate", "ModalHighCost", "ModalLongRunningJob", "ModalOperatorRestarts",
        "ModalWebhookErrors", "ModalNoActiveJobs", "ModalExporterSourceDown",
        "ModalExporterSourceStale", "ModalExporterAbsent"}) {
    EXPECT_EQ(alerts.count(want), 1u) << want;
  }
}

TEST(AlertRules, EveryAlertIsExercisedByThePromtoolTests) {
  const auto rules = YAML::Load(read_source("monitoring/prometheus-rules.yaml"));
  const auto tests = YAML::Load(read_source("monitoring/prometheus-rules.test.yaml"));
  std::set<std::string> fires, silent;
  for (const auto& t : tests["tests"]) {
    for (const auto& a : t["alert_rule_test"]) {
      const auto name = a["alertname"].as<std::string>();
      (a["exp_alerts"].size() > 0 ? fires : silent).insert(name);
    }
  }
  for (const auto& g : rules["groups"]) {
    for (const auto& r : g["rules"]) {
      if (!r["alert"]) continue;
      const auto name = r["alert"].as<std::string>();
      EXPECT_EQ(fires.count(name), 1u) << name << " is never tested firing";
      EXPECT_EQ(silent.count(name), 1u) << name << " is never tested silent";
    }
  }
}

// GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to dashes.
std::string heading_anchor(const std::string& heading) {
  std::string out;
  for (const unsigned char c : heading) {
    if (std::isalnum(c) || c == '-' || c == '_') {
      out += static_cast<char>(std::tolower(c));
    } else if (c == ' ') {
      out += '-';
    }
  }
  return out;
}

// Every runbook_url points into docs/runbooks.md at a heading of that alert, and the heading
// has the three parts a responder needs.
TEST(AlertRules, EveryRunbookUrlResolvesToAHeadingInDocsRunbooks) {
  const auto runbooks = read_source("docs/runbooks.md");
  std::map<std::string, std::string> sections;  // anchor -> text up to the next "## "
  std::istringstream in(runbooks);
  std::string current;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("## ", 0) == 0) {
      current = heading_anchor(line.substr(3));
      sections[current];
    } else if (!current.empty()) {
      sections[current] += line + "\n";
    }
  }
  for (const auto& r : alert_rules()) {
    const auto name = r["alert"].as<std::string>();
    const auto url = r["annotations"]["runbook_url"].as<std::string>("");
    const auto hash = url.find('#');
    ASSERT_NE(hash, std::string::npos) << name << ": " << url;
    EXPECT_TRUE(url.substr(0, hash).ends_with("docs/runbooks.md")) << name << ": " << url;
    const auto anchor = url.substr(hash + 1);
    EXPECT_EQ(anchor, heading_anchor(name)) << name;
    ASSERT_EQ(sections.count(anchor), 1u) << name << ": no heading #" << anchor;
    for (const char* part : {"**Meaning**", "**Diagnose**", "**Act**"}) {
      EXPECT_NE(sections[anchor].find(part), std::string::npos) << name << " lacks " << part;
    }
  }
}

class Dashboard : public ::testing::Test {
 protected:
  nlohmann::json d = nlohmann::json::parse(read_source("monitoring/grafana-dashboard.json"));

  std::vector<nlohmann::json> panels() const {
    std::vector<nlohmann::json> out;
    for (const auto& p : d["panels"]) {
      out.push_back(p);
      for (const auto& q : p.value("panels", nlohmann::json::array())) out.push_back(q);
    }
    return out;
  }
};

TEST_F(Dashboard, Importable) {
  EXPECT_GE(d["schemaVersion"].get<int>(), 30);
  EXPECT_FALSE(d["uid"].get<std::string>().empty());
  EXPECT_FALSE(d["title"].get<std::string>().empty());
  EXPECT_TRUE(d["id"].is_null()) << "an exported dashboard carries no database id";
  ASSERT_TRUE(d["__inputs"].is_array());
  bool ds_input = false;
  for (const auto& in : d["__inputs"]) {
    ds_input |= in["name"] == "DS_PROMETHEUS" && in["type"] == "datasource" &&
                in["pluginId"] == "prometheus";
  }
  EXPECT_TRUE(ds_input);
  std::map<std::string, nlohmann::json> vars;
  for (const auto& v : d["templating"]["list"]) vars[v["name"].get<std::string>()] = v;
  ASSERT_TRUE(vars.count("datasource"));
  EXPECT_EQ(vars["datasource"]["type"], "datasource");
  EXPECT_EQ(vars["datasource"]["query"], "prometheus");
  for (const char* v : {"namespace", "gpu_type"}) {
    ASSERT_TRUE(vars.count(v)) << v;
    EXPECT_EQ(vars[v]["type"], "query");
    EXPECT_TRUE(vars[v]["includeAll"].get<bool>());
    EXPECT_EQ(vars[v]["datasource"]["uid"], "${datasource}");
  }
}

TEST_F(Dashboard, DocumentedPanelsAndMore) {
  std::set<std::string> titles;
  for (const auto& p : panels()) titles.insert(p.value("title", ""));
  for (const char* documented : {"Active Modal Jobs", "Jobs by Status", "GPU Utilization by Type",
                                 "Job Duration Distribution", "i6pn Networking Usage", "Error Rate",
                                 "Replica Distribution"}) {
    EXPECT_EQ(titles.count(documented), 1u) << documented;
  }
  // Cost, queueing, cold starts and source health panels, found by what they query.
  std::map<std::string, int> topics;
  for (const auto& p : panels()) {
    for (const auto& t : p.value("targets", nlohmann::json::array())) {
      const auto expr = t.value("expr", std::string());
      for (const char* m : {"modal_cost_estimate_usd", "modal_job_queue_seconds_bucket",
                            "modal_function_cold_starts_total", "modal_exporter_source_up"}) {
        if (expr.find(m) != std::string::npos) ++topics[m];
      }
    }
  }
  EXPECT_EQ(topics.size(), 4u);
}

TEST_F(Dashboard, PanelsHaveUniqueIdsTheDatasourceVariableAndDoNotOverlap) {
  std::set<int> ids;
  std::vector<std::array<int, 4>> boxes;
  for (const auto& p : panels()) {
    const auto title = p.value("title", std::string());
    EXPECT_TRUE(ids.insert(p["id"].get<int>()).second) << "duplicate id, " << title;
    const auto& g = p["gridPos"];
    const std::array<int, 4> box{g["x"].get<int>(), g["y"].get<int>(), g["w"].get<int>(),
                                 g["h"].get<int>()};
    EXPECT_LE(box[0] + box[2], 24) << title;
    for (const auto& o : boxes) {
      const bool overlap = box[0] < o[0] + o[2] && o[0] < box[0] + box[2] && box[1] < o[1] + o[3] &&
                           o[1] < box[1] + box[3];
      EXPECT_FALSE(overlap) << title << " overlaps another panel";
    }
    boxes.push_back(box);
    if (p["type"] == "row") continue;
    EXPECT_EQ(p["datasource"]["uid"], "${datasource}") << title;
    ASSERT_FALSE(p["targets"].empty()) << title;
    for (const auto& t : p["targets"]) {
      EXPECT_EQ(t["datasource"]["uid"], "${datasource}") << title;
    }
  }
}

// Every panel says what it shows and in which unit; a series of another unit than the panel's
// (an override of its unit) is drawn on an axis of its own.
TEST_F(Dashboard, EveryPanelHasADescriptionAndAUnit) {
  for (const auto& p : panels()) {
    if (p["type"] == "row") continue;
    const auto title = p.value("title", std::string());
    EXPECT_FALSE(p.value("description", std::string()).empty()) << title;
    const auto defaults = p["fieldConfig"]["defaults"];
    EXPECT_FALSE(defaults.value("unit", std::string()).empty()) << title << " has no unit";
    for (const auto& o : p["fieldConfig"].value("overrides", nlohmann::json::array())) {
      bool unit = false, axis = false;
      for (const auto& prop : o["properties"]) {
        unit |= prop["id"] == "unit";
        axis |= prop["id"] == "custom.axisPlacement";
      }
      EXPECT_TRUE(!unit || axis) << title << ": a second unit on the same axis";
    }
  }
}

TEST(Coverage, EveryDocumentedMetricIsOnTheDashboardOrInAnAlert) {
  std::set<std::string> used;
  auto exprs = mx::deploy::rule_file_exprs(read_source("monitoring/prometheus-rules.yaml"));
  for (auto& e : mx::deploy::dashboard_exprs(read_source("monitoring/grafana-dashboard.json"))) {
    exprs.push_back(e);
  }
  for (const auto& e : exprs) {
    for (const auto& n : mx::deploy::promql_metric_names(e.expr)) used.insert(family(n));
  }
  for (const auto& m : kDocumentedMetrics) EXPECT_EQ(used.count(m), 1u) << m;
}

}  // namespace
}  // namespace mx::testing
