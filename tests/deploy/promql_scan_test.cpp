#include "promql_scan.h"

#include <gtest/gtest.h>

namespace mx::deploy {
namespace {

using Names = std::set<std::string>;

TEST(PromqlScan, BareAndBracedSelectors) {
  EXPECT_EQ(promql_metric_names("modal_jobs_active"), Names{"modal_jobs_active"});
  EXPECT_EQ(promql_metric_names(R"(modal_jobs_total{status="failed", gpu_type=~"A.*"})"),
            Names{"modal_jobs_total"});
  EXPECT_EQ(promql_metric_names(R"({__name__="modal_job_info", namespace="x"})"),
            Names{"modal_job_info"});
  // A regex __name__ matcher names no single metric.
  EXPECT_EQ(promql_metric_names(R"({__name__=~"modal_.*"})"), Names{});
}

TEST(PromqlScan, FunctionsAggregationsAndLabelListsAreNotMetrics) {
  EXPECT_EQ(promql_metric_names("histogram_quantile(0.95, sum by (le, gpu_type) "
                                "(rate(modal_job_queue_seconds_bucket[5m]))) > 120"),
            Names{"modal_job_queue_seconds_bucket"});
  EXPECT_EQ(promql_metric_names("sum(rate(a_total[5m])) by (component) / on(x) group_left(y) b"),
            (Names{"a_total", "b"}));
  EXPECT_EQ(promql_metric_names("topk(5, sum without (instance) (modal_jobs_active))"),
            Names{"modal_jobs_active"});
  EXPECT_EQ(promql_metric_names("time() - modal_exporter_source_last_success_timestamp_seconds"),
            Names{"modal_exporter_source_last_success_timestamp_seconds"});
  EXPECT_EQ(promql_metric_names("(sum(x) or vector(0)) == 0 and sum(rate(y[5m])) > 0"),
            (Names{"x", "y"}));
  EXPECT_EQ(promql_metric_names("rate(x[5m] offset 1h) > bool 2 unless absent(z)"),
            (Names{"x", "z"}));
  EXPECT_EQ(promql_metric_names("max_over_time(x[10m:1m]) > Inf or NaN < 1e3"), Names{"x"});
}

TEST(PromqlScan, StringsAndVariablesAreSkipped) {
  EXPECT_EQ(promql_metric_names(R"(label_replace(m, "dst", "$1", "src", "(.*) not_a_metric"))"),
            Names{"m"});
  EXPECT_EQ(promql_metric_names("rate(m[$__rate_interval])"), Names{"m"});
  EXPECT_EQ(promql_metric_names("# a comment naming fake_metric\nreal_metric"),
            Names{"real_metric"});
}

TEST(PromqlScan, RejectsUnbalancedInput) {
  EXPECT_THROW(promql_metric_names("sum(rate(x[5m])"), ScanError);
  EXPECT_THROW(promql_metric_names("x{a=\"b\""), ScanError);
  EXPECT_THROW(promql_metric_names("x[5m"), ScanError);
  EXPECT_THROW(promql_metric_names(R"(x{a="b})"), ScanError);
  EXPECT_THROW(promql_metric_names("x)"), ScanError);
}

TEST(GrafanaVariables, AreSubstituted) {
  EXPECT_EQ(substitute_grafana_variables(
                R"(sum(rate(m{namespace=~"$namespace",gpu=~"${gpu_type}"}[$__rate_interval])))"),
            R"(sum(rate(m{namespace=~".*",gpu=~".*"}[5m])))");
  EXPECT_EQ(substitute_grafana_variables("increase(m[${__range}]) / $__range_s"),
            "increase(m[5m]) / 300");
  EXPECT_EQ(substitute_grafana_variables("m > $ 1"), "m > $ 1");
}

TEST(RuleFile, CollectsEveryExpr) {
  const auto exprs = rule_file_exprs(R"(
groups:
  - name: a
    rules:
      - alert: A
        expr: x > 1
      - record: r:x
        expr: sum(x)
  - name: b
    rules:
      - alert: B
        expr: y == 0
)");
  ASSERT_EQ(exprs.size(), 3u);
  EXPECT_EQ(exprs[0].where, "alert A");
  EXPECT_EQ(exprs[1].expr, "sum(x)");
  EXPECT_EQ(exprs[2].where, "alert B");
  EXPECT_THROW(rule_file_exprs("groups:\n  - name: a\n    rules:\n      - alert: A\n"), ScanError);
  EXPECT_THROW(rule_file_exprs("{}"), ScanError);
}

TEST(Dashboard, CollectsTargetsNestedPanelsAndVariables) {
  const auto exprs = dashboard_exprs(R"json({
    "panels": [
      {"title": "P", "targets": [{"refId": "A", "expr": "rate(a[$__rate_interval])"}]},
      {"title": "Row", "type": "row", "panels": [
        {"title": "Q", "targets": [{"refId": "B", "expr": "b{ns=~\"$namespace\"}"}]}]}
    ],
    "templating": {"list": [
      {"name": "datasource", "type": "datasource", "query": "prometheus"},
      {"name": "namespace", "type": "query", "query": {"query": "label_values(c{x=\"1\"}, namespace)"}},
      {"name": "other", "type": "query", "query": "label_values(job)"},
      {"name": "q", "type": "query", "definition": "query_result(topk(3, d))"}
    ]}})json");
  ASSERT_EQ(exprs.size(), 4u);
  EXPECT_EQ(exprs[0].expr, "rate(a[5m])");
  EXPECT_EQ(exprs[1].where, "panel 'Q' B");
  EXPECT_EQ(exprs[1].expr, R"(b{ns=~".*"})");
  EXPECT_EQ(exprs[2].expr, R"(c{x="1"})");
  EXPECT_EQ(exprs[3].expr, "topk(3, d)");
  EXPECT_THROW(dashboard_exprs("{not json"), ScanError);
}

TEST(Exposition, NamesOfSamplesAndDeclaredHistograms) {
  const auto names = exposition_names(
      "# HELP modal_jobs_total Jobs.\n# TYPE modal_jobs_total counter\n"
      "modal_jobs_total{status=\"created\"} 3\n"
      "# TYPE modal_job_queue_seconds histogram\n"
      "modal_job_queue_seconds_bucket{le=\"+Inf\"} 0\n"
      "process_start_time_seconds 1.7e9\r\n");
  EXPECT_EQ(names, (Names{"modal_jobs_total", "modal_job_queue_seconds_bucket",
                          "modal_job_queue_seconds_sum", "modal_job_queue_seconds_count",
                          "process_start_time_seconds"}));
  EXPECT_THROW(exposition_names("# only comments\n"), ScanError);
  EXPECT_THROW(exposition_names("{bad} 1\n"), ScanError);
}

}  // namespace
}  // namespace mx::deploy
