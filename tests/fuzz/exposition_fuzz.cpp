// The exposition parser (telemetry endpoints of jobs, the operator's /metrics) in both formats.
// Invariants: the error list is bounded; every accepted sample, written back with the exporter's
// own writer (exposition/text_format.h), parses again to the same sample without errors.
#include <cmath>
#include <string>
#include <vector>

#include "exposition/text_format.h"
#include "fuzz_support.h"
#include "sources/telemetry/exposition_parser.h"

namespace {

bool same_value(double a, double b) {
  return (std::isnan(a) && std::isnan(b)) || a == b;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  // The first byte picks the format and whether a `keep` filter is set; the rest is the body.
  const std::uint8_t mode = data[0];
  const std::string_view body = mx::fuzz::as_text(data + 1, size - 1);
  mx::ExpositionParseOptions options;
  options.format = (mode & 1) ? mx::ExpositionFormat::openmetrics : mx::ExpositionFormat::text;
  options.max_errors = 8;
  if (mode & 2) options.keep = [](std::string_view name) { return name.size() % 2 == 0; };

  const auto result = mx::parse_exposition(body, options);
  MX_FUZZ_CHECK(result.errors.size() <= options.max_errors);
  if (options.keep) {
    // The filter decides what is copied out, never what is an error.
    mx::ExpositionParseOptions unfiltered = options;
    unfiltered.keep = nullptr;
    const auto all = mx::parse_exposition(body, unfiltered);
    MX_FUZZ_CHECK(all.error_count == result.error_count);
    MX_FUZZ_CHECK(all.sample_lines == result.sample_lines);
    MX_FUZZ_CHECK(all.errors.size() == result.errors.size());
    for (std::size_t i = 0; i < all.errors.size(); ++i) {
      MX_FUZZ_CHECK(all.errors[i].line == result.errors[i].line &&
                    all.errors[i].reason == result.errors[i].reason);
    }
    std::size_t k = 0;
    for (const auto& s : all.samples) {
      if (!options.keep(s.name)) continue;
      MX_FUZZ_CHECK(k < result.samples.size());
      const auto& kept = result.samples[k++];
      MX_FUZZ_CHECK(kept.name == s.name && kept.labels == s.labels &&
                    same_value(kept.value, s.value) && kept.timestamp_ms == s.timestamp_ms);
    }
    MX_FUZZ_CHECK(k == result.samples.size());
  }
  MX_FUZZ_CHECK(result.error_count >= result.errors.size());
  MX_FUZZ_CHECK(result.samples.size() <= result.sample_lines);
  for (const auto& e : result.errors) MX_FUZZ_CHECK(e.line >= 1 && !e.reason.empty());

  std::string rendered;
  for (const auto& s : result.samples) {
    MX_FUZZ_CHECK(!s.name.empty());
    std::vector<mx::Label> labels;
    for (const auto& l : s.labels) labels.push_back({l.name, l.value});
    mx::append_sample(rendered, s.name, labels, s.value);
  }
  mx::ExpositionParseOptions again;
  again.format = mx::ExpositionFormat::text;
  const auto reparsed = mx::parse_exposition(rendered, again);
  MX_FUZZ_CHECK(reparsed.error_count == 0);
  MX_FUZZ_CHECK(reparsed.samples.size() == result.samples.size());
  for (std::size_t i = 0; i < reparsed.samples.size(); ++i) {
    const auto& a = result.samples[i];
    const auto& b = reparsed.samples[i];
    MX_FUZZ_CHECK(a.name == b.name && a.labels == b.labels && same_value(a.value, b.value));
  }
  (void)mx::exposition_format_for_content_type(body.substr(0, 200));
  return 0;
}
