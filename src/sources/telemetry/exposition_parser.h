// A parser for the Prometheus text format 0.0.4 and OpenMetrics 1.0, used to read the telemetry
// endpoints of jobs and the operator's own /metrics. One pass over the body, no regex: a 10 MB
// body from a misbehaving target must not stall the io_context thread for long.
//
// A malformed line is skipped and reported with its line number and a reason; the rest of the
// body is still parsed, so the caller decides whether a partial result is good enough.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "exposition/text_format.h"

namespace mx {

struct ExpositionLabel {
  std::string name;
  std::string value;  // unescaped

  bool operator==(const ExpositionLabel&) const = default;
};

struct ExpositionSample {
  std::string name;  // the sample's own name (e.g. `x_total`, `x_bucket`), not the family's
  std::vector<ExpositionLabel> labels;  // in the order written
  double value = 0;
  std::optional<std::int64_t> timestamp_ms;

  // The value of label `label_name`, or nullptr when the sample does not carry it.
  const std::string* label(std::string_view label_name) const;
};

struct ExpositionError {
  std::size_t line = 0;  // 1-based
  std::string reason;
};

// ExpositionFormat (exposition/text_format.h): text timestamps are integer milliseconds,
// OpenMetrics timestamps are (fractional) seconds.

// `application/openmetrics-text...` selects OpenMetrics; anything else the classic text format.
ExpositionFormat exposition_format_for_content_type(std::string_view content_type);

struct ExpositionParseOptions {
  ExpositionFormat format = ExpositionFormat::text;
  // Keeps only samples whose name it accepts (others are still checked for errors, but not
  // copied out). Empty: keep every sample.
  std::function<bool(std::string_view name)> keep;
  // Only the first errors are kept with their reason; error_count counts all of them, so a huge
  // garbage body cannot grow the error list without bound.
  std::size_t max_errors = 100;
};

struct ExpositionParseResult {
  std::vector<ExpositionSample> samples;
  std::vector<ExpositionError> errors;
  std::size_t error_count = 0;
  std::size_t sample_lines = 0;  // valid sample lines, kept or not
};

ExpositionParseResult parse_exposition(std::string_view body,
                                       const ExpositionParseOptions& options = {});

}  // namespace mx
