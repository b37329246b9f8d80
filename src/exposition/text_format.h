// Writing Prometheus text 0.0.4 / OpenMetrics 1.0 sample lines. The two formats share sample
// syntax for the types this exporter uses; only family headers and the final "# EOF" differ.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mx {

enum class MetricType { counter, gauge, histogram };
enum class ExpositionFormat { text, openmetrics };

struct Label {
  std::string_view name;
  std::string_view value;
};

// Shortest representation that round-trips: integers without a decimal point, +Inf, -Inf, NaN.
void append_value(std::string& out, double value);
// Label value escaping: backslash, double quote and newline.
void append_escaped_label_value(std::string& out, std::string_view value);
// name{l1="v1",...} value\n  (no braces when there are no labels)
void append_sample(std::string& out, std::string_view name, std::initializer_list<Label> labels,
                   double value);
void append_sample(std::string& out, std::string_view name, const std::vector<Label>& labels,
                   double value);

// "# HELP" and "# TYPE" lines. In OpenMetrics a counter family is named without "_total".
void append_family_header(std::string& out, ExpositionFormat format, std::string_view name,
                          std::string_view help, MetricType type);

// A histogram's _bucket (cumulative, ending with +Inf), _sum and _count lines.
// `bucket_counts` are per-bucket (non-cumulative) counts for `bounds`, plus one for +Inf.
void append_histogram(std::string& out, std::string_view name, const std::vector<Label>& labels,
                      const std::vector<double>& bounds,
                      const std::vector<std::uint64_t>& bucket_counts, double sum);

}  // namespace mx
