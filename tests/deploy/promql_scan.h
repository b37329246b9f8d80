// Finds the metric names a PromQL expression selects, and collects the PromQL expressions of
// the shipped alert rules and Grafana dashboard. promtool (2.42) parses rule files but has no
// command that prints an expression's selectors, so the deploy checks use this small scanner to
// compare the names against a real /metrics scrape of the exporter.
#pragma once

#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace mx::deploy {

// Thrown for input the scanner cannot make sense of (unbalanced brackets, unterminated string).
struct ScanError {
  std::string message;
};

// Metric names selected by `expr`: bare selectors (`foo`, `foo{a="b"}`, `foo[5m]`) and
// `{__name__="foo"}`. Function, aggregation and keyword names, label names in by/without/on/
// ignoring/group_left/group_right lists, label matchers, durations, numbers, strings and Grafana
// variables ($x, ${x}) are not metric names. Throws ScanError.
std::set<std::string> promql_metric_names(std::string_view expr);

// Grafana variables replaced so the expression is plain PromQL: $__rate_interval, $__interval,
// $__range (and ${...} forms) -> "5m", $__range_s -> "300", any other $var / ${var} -> ".*"
// (they only appear inside regex matchers, where ".*" is the "All" value).
std::string substitute_grafana_variables(std::string_view expr);

struct NamedExpr {
  std::string where;  // e.g. "rule ModalJobFailureRate", "panel 'Active Modal Jobs' A"
  std::string expr;   // plain PromQL (Grafana variables substituted)
};

// `expr` of every rule in a Prometheus rule file (groups[].rules[]). Throws ScanError.
std::vector<NamedExpr> rule_file_exprs(const std::string& yaml_text);

// `expr` of every target of every panel (rows' nested panels too) and the PromQL inside every
// query variable (`label_values(<selector>, label)`, `query_result(<expr>)`, plain PromQL) of a
// Grafana dashboard JSON. Throws ScanError.
std::vector<NamedExpr> dashboard_exprs(const std::string& json_text);

// Sample names in a Prometheus text exposition (what a /metrics scrape returned): the metric
// name of every sample line, plus `<name>_bucket/_sum/_count` for every `# TYPE <name>
// histogram` and `<name>_sum/_count` for summaries, so a declared family counts even when it
// has no observation yet. Throws ScanError when the text holds no sample at all.
std::set<std::string> exposition_names(const std::string& text);

}  // namespace mx::deploy
