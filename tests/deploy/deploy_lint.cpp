// deploy_lint: the PromQL checks of the shipped alert rules and Grafana dashboard.
//
//   deploy_lint exprs RULES.yaml DASHBOARD.json OUT.yaml
//       Writes every expression (dashboard variables substituted) as a recording rule into
//       OUT.yaml, so that `promtool check rules OUT.yaml` parses each one (promtool 2.42 has no
//       standalone expression parser).
//   deploy_lint names RULES.yaml DASHBOARD.json METRICS_DUMP
//       Fails when an expression selects a metric that the exporter did not export in
//       METRICS_DUMP (the text of a real /metrics scrape). `up` is allowed: Prometheus makes it.
#include <yaml-cpp/yaml.h>

#include <fstream>
#include <iostream>
#include <sstream>

#include "promql_scan.h"

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw mx::deploy::ScanError{"cannot read " + path};
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<mx::deploy::NamedExpr> all_exprs(const std::string& rules, const std::string& dash) {
  auto out = mx::deploy::rule_file_exprs(read_file(rules));
  for (auto& e : mx::deploy::dashboard_exprs(read_file(dash))) out.push_back(std::move(e));
  return out;
}

int exprs(const std::string& rules, const std::string& dash, const std::string& out_path) {
  const auto list = all_exprs(rules, dash);
  YAML::Emitter y;
  y << YAML::BeginMap << YAML::Key << "groups" << YAML::Value << YAML::BeginSeq;
  y << YAML::BeginMap << YAML::Key << "name" << YAML::Value << "deploy-lint";
  y << YAML::Key << "rules" << YAML::Value << YAML::BeginSeq;
  int n = 0;
  for (const auto& e : list) {
    // The comment names where the expression came from, so promtool's error can be traced.
    y << YAML::Comment(e.where);
    std::cout << "  deploy_lint_expr_" << n << ": " << e.where << "\n";
    y << YAML::BeginMap << YAML::Key << "record" << YAML::Value
      << "deploy_lint_expr_" + std::to_string(n++) << YAML::Key << "expr" << YAML::Value
      << YAML::Literal << e.expr << YAML::EndMap;
  }
  y << YAML::EndSeq << YAML::EndMap << YAML::EndSeq << YAML::EndMap;
  std::ofstream out(out_path);
  out << y.c_str() << "\n";
  if (!out) throw mx::deploy::ScanError{"cannot write " + out_path};
  std::cout << "deploy_lint: wrote " << n << " expressions to " << out_path << "\n";
  return n > 0 ? 0 : 1;
}

int names(const std::string& rules, const std::string& dash, const std::string& dump_path) {
  std::ifstream probe(dump_path);
  if (!probe) {
    std::cerr << "deploy_lint: no metrics dump at " << dump_path
              << ": it must be a real /metrics scrape of modal-exporter running against the "
                 "simulator (the ctest fixture `metrics_dump` produces it; see "
                 "tests/deploy/CMakeLists.txt)\n";
    return 2;
  }
  auto exported = mx::deploy::exposition_names(read_file(dump_path));
  exported.insert("up");
  int bad = 0;
  std::set<std::string> used;
  const auto list = all_exprs(rules, dash);
  for (const auto& e : list) {
    const auto selected = mx::deploy::promql_metric_names(e.expr);
    if (selected.empty()) {
      std::cerr << "deploy_lint: " << e.where << " selects no metric: " << e.expr << "\n";
      ++bad;
    }
    for (const auto& name : selected) {
      used.insert(name);
      if (exported.count(name) == 0) {
        std::cerr << "deploy_lint: " << e.where << " uses " << name
                  << ", which the exporter's /metrics does not contain\n";
        ++bad;
      }
    }
  }
  std::cout << "deploy_lint: " << list.size() << " expressions use " << used.size()
            << " metric names; " << exported.size() << " names in " << dump_path << "\n";
  return bad == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string cmd = argc > 1 ? argv[1] : "";
    if (cmd == "exprs" && argc == 5) return exprs(argv[2], argv[3], argv[4]);
    if (cmd == "names" && argc == 5) return names(argv[2], argv[3], argv[4]);
    std::cerr << "usage: deploy_lint exprs RULES DASHBOARD OUT | names RULES DASHBOARD DUMP\n";
    return 2;
  } catch (const mx::deploy::ScanError& e) {
    std::cerr << "deploy_lint: " << e.message << "\n";
    return 1;
  }
}
