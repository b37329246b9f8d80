#include "sources/telemetry/exposition_parser.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>

namespace mx {
namespace {

using ::testing::HasSubstr;

ExpositionParseResult parse(std::string_view body,
                            ExpositionFormat format = ExpositionFormat::text) {
  ExpositionParseOptions options;
  options.format = format;
  return parse_exposition(body, options);
}

// Parses one line that must be rejected; returns the reason.
std::string rejection(std::string_view line) {
  const auto r = parse(line);
  EXPECT_EQ(r.samples.size(), 0u) << line;
  EXPECT_EQ(r.error_count, 1u) << line;
  if (r.errors.empty()) return "";
  EXPECT_EQ(r.errors[0].line, 1u);
  return r.errors[0].reason;
}

TEST(ExpositionParser, SimpleSampleWithoutLabels) {
  const auto r = parse("up 1\n");
  ASSERT_EQ(r.samples.size(), 1u);
  EXPECT_TRUE(r.errors.empty());
  EXPECT_EQ(r.samples[0].name, "up");
  EXPECT_TRUE(r.samples[0].labels.empty());
  EXPECT_EQ(r.samples[0].value, 1.0);
  EXPECT_FALSE(r.samples[0].timestamp_ms);
}

TEST(ExpositionParser, LabelsInOrderAndLookup) {
  const auto r = parse(R"(http_requests_total{method="post",code="200"} 1027)");
  ASSERT_EQ(r.samples.size(), 1u);
  const auto& s = r.samples[0];
  ASSERT_EQ(s.labels.size(), 2u);
  EXPECT_EQ(s.labels[0], (ExpositionLabel{"method", "post"}));
  EXPECT_EQ(s.labels[1], (ExpositionLabel{"code", "200"}));
  ASSERT_NE(s.label("code"), nullptr);
  EXPECT_EQ(*s.label("code"), "200");
  EXPECT_EQ(s.label("missing"), nullptr);
  EXPECT_EQ(s.value, 1027.0);
}

TEST(ExpositionParser, HelpTypeAndOtherCommentsAreSkipped) {
  const auto r = parse(
      "# HELP http_requests_total The total number of HTTP requests.\n"
      "# TYPE http_requests_total counter\n"
      "# just a comment\n"
      "#no space either\n"
      "# HELP with_escapes A \\\\ backslash and a \\n newline\n"
      "http_requests_total 3\n");
  EXPECT_TRUE(r.errors.empty()) << r.errors[0].reason;
  ASSERT_EQ(r.samples.size(), 1u);
  EXPECT_EQ(r.samples[0].value, 3.0);
}

TEST(ExpositionParser, LabelValueEscapes) {
  const auto r = parse(
      R"(msdos_file_access_time_seconds{path="C:\\DIR\\FILE.TXT",error="Cannot find file:\n\"FILE.TXT\""} 1.458255915e9)");
  ASSERT_EQ(r.samples.size(), 1u) << (r.errors.empty() ? "" : r.errors[0].reason);
  EXPECT_EQ(*r.samples[0].label("path"), "C:\\DIR\\FILE.TXT");
  EXPECT_EQ(*r.samples[0].label("error"), "Cannot find file:\n\"FILE.TXT\"");
  EXPECT_DOUBLE_EQ(r.samples[0].value, 1.458255915e9);
}

TEST(ExpositionParser, EmptyLabelSetTrailingCommaAndSpaces) {
  const auto r = parse(
      "a{} 1\n"
      "b{x=\"1\",} 2\n"
      "c { x = \"1\" , y=\"\" , } 3\n"
      "  d\t4  \n"
      "e{x=\"v\"}5\n");
  EXPECT_TRUE(r.errors.empty()) << r.errors[0].reason;
  ASSERT_EQ(r.samples.size(), 5u);
  EXPECT_TRUE(r.samples[0].labels.empty());
  EXPECT_EQ(r.samples[1].labels.size(), 1u);
  ASSERT_EQ(r.samples[2].labels.size(), 2u);
  EXPECT_EQ(r.samples[2].labels[1], (ExpositionLabel{"y", ""}));
  EXPECT_EQ(r.samples[2].value, 3.0);
  EXPECT_EQ(r.samples[3].name, "d");
  EXPECT_EQ(r.samples[3].value, 4.0);
  EXPECT_EQ(r.samples[4].value, 5.0);
}

TEST(ExpositionParser, TimestampsInTextFormatAreMilliseconds) {
  const auto r = parse(
      "metric_without_timestamp_and_labels 12.47\nsomething_weird{problem=\"division by zero\"} "
      "+Inf -3982045\nm 1 1395066363000\n");
  ASSERT_EQ(r.samples.size(), 3u);
  EXPECT_FALSE(r.samples[0].timestamp_ms);
  EXPECT_TRUE(std::isinf(r.samples[1].value) && r.samples[1].value > 0);
  EXPECT_EQ(r.samples[1].timestamp_ms, -3982045);
  EXPECT_EQ(r.samples[2].timestamp_ms, 1395066363000);
}

TEST(ExpositionParser, SpecialAndExponentValues) {
  const auto r = parse("a NaN\nb +Inf\nc -Inf\nd 1e3\ne -1.5E-3\nf +7\ng .5\nh Inf\ni 1e-400\n");
  EXPECT_TRUE(r.errors.empty()) << r.errors[0].reason;
  ASSERT_EQ(r.samples.size(), 9u);
  EXPECT_TRUE(std::isnan(r.samples[0].value));
  EXPECT_EQ(r.samples[1].value, INFINITY);
  EXPECT_EQ(r.samples[2].value, -INFINITY);
  EXPECT_EQ(r.samples[3].value, 1000.0);
  EXPECT_DOUBLE_EQ(r.samples[4].value, -0.0015);
  EXPECT_EQ(r.samples[5].value, 7.0);
  EXPECT_EQ(r.samples[6].value, 0.5);
  EXPECT_EQ(r.samples[7].value, INFINITY);
  EXPECT_EQ(r.samples[8].value, 0.0);
}

TEST(ExpositionParser, HistogramLines) {
  const auto r = parse(
      "# TYPE http_request_duration_seconds histogram\n"
      "http_request_duration_seconds_bucket{le=\"0.05\"} 24054\n"
      "http_request_duration_seconds_bucket{le=\"+Inf\"} 144320\n"
      "http_request_duration_seconds_sum 53423\n"
      "http_request_duration_seconds_count 144320\n");
  EXPECT_TRUE(r.errors.empty());
  ASSERT_EQ(r.samples.size(), 4u);
  EXPECT_EQ(*r.samples[1].label("le"), "+Inf");
  EXPECT_EQ(r.samples[1].value, 144320.0);
}

TEST(ExpositionParser, BlankLinesAndCrLf) {
  const auto r = parse("\r\n# TYPE a gauge\r\na{x=\"1\"} 1\r\n\r\n   \r\nb 2 1000\r\nc 3");
  EXPECT_TRUE(r.errors.empty()) << r.errors[0].reason;
  ASSERT_EQ(r.samples.size(), 3u);
  EXPECT_EQ(*r.samples[0].label("x"), "1");
  EXPECT_EQ(r.samples[1].timestamp_ms, 1000);
  EXPECT_EQ(r.samples[2].value, 3.0);
}

TEST(ExpositionParser, OpenMetricsFamilyExemplarsTimestampsAndEof) {
  const auto r = parse(
      "# TYPE modal_webhook_requests counter\n"
      "# HELP modal_webhook_requests Webhook requests.\n"
      "# UNIT modal_webhook_requests requests\n"
      "modal_webhook_requests_total{method=\"CREATE\",status=\"mutated\"} 3 1700000000.5\n"
      "modal_webhook_requests_created{method=\"CREATE\",status=\"mutated\"} 1.7e9\n"
      "# TYPE rpc_seconds histogram\n"
      "rpc_seconds_bucket{le=\"0.1\"} 8 # {trace_id=\"abc\"} 0.05 1700000000.1\n"
      "rpc_seconds_bucket{le=\"+Inf\"} 9 1700000000 # {trace_id=\"def\"} 2.5\n"
      "# EOF\n",
      ExpositionFormat::openmetrics);
  EXPECT_TRUE(r.errors.empty()) << r.errors[0].reason;
  ASSERT_EQ(r.samples.size(), 4u);
  EXPECT_EQ(r.samples[0].name, "modal_webhook_requests_total");
  EXPECT_EQ(r.samples[0].timestamp_ms, 1700000000500);
  EXPECT_EQ(r.samples[2].value, 8.0);
  EXPECT_FALSE(r.samples[2].timestamp_ms);
  EXPECT_EQ(r.samples[3].value, 9.0);
  EXPECT_EQ(r.samples[3].timestamp_ms, 1700000000000);
}

TEST(ExpositionParser, ContentAfterEofIsAnError) {
  const auto r = parse("a 1\n# EOF\nb 2\n", ExpositionFormat::openmetrics);
  ASSERT_EQ(r.samples.size(), 1u);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].line, 3u);
  EXPECT_THAT(r.errors[0].reason, HasSubstr("after # EOF"));
  EXPECT_TRUE(parse("a 1\n# EOF\n\n").errors.empty());
}

TEST(ExpositionParser, FormatFromContentType) {
  EXPECT_EQ(exposition_format_for_content_type(
                "application/openmetrics-text; version=1.0.0; charset=utf-8"),
            ExpositionFormat::openmetrics);
  EXPECT_EQ(exposition_format_for_content_type("Application/OpenMetrics-Text"),
            ExpositionFormat::openmetrics);
  EXPECT_EQ(exposition_format_for_content_type("text/plain; version=0.0.4"),
            ExpositionFormat::text);
  EXPECT_EQ(exposition_format_for_content_type(""), ExpositionFormat::text);
}

TEST(ExpositionParser, RejectsBadMetricNames) {
  EXPECT_THAT(rejection("0abc 1"), HasSubstr("invalid metric name"));
  EXPECT_THAT(rejection("ab-c 1"), HasSubstr("'-' not allowed"));
  EXPECT_THAT(rejection("{a=\"b\"} 1"), HasSubstr("invalid metric name"));
  EXPECT_THAT(rejection("# TYPE 9lives gauge"), HasSubstr("invalid metric name"));
  EXPECT_THAT(rejection("# TYPE ok_name flavour"), HasSubstr("unknown metric type"));
}

TEST(ExpositionParser, RejectsBadLabelSets) {
  EXPECT_THAT(rejection("a{x=\"unterminated} 1"), HasSubstr("unterminated value of label \"x\""));
  EXPECT_THAT(rejection("a{x=\"1\" 1"), HasSubstr("expected ',' or '}'"));
  EXPECT_THAT(rejection("a{x=\"1\""), HasSubstr("unterminated label set"));
  EXPECT_THAT(rejection("a{x=1} 1"), HasSubstr("expected '\"'"));
  EXPECT_THAT(rejection("a{x} 1"), HasSubstr("expected '='"));
  EXPECT_THAT(rejection("a{9x=\"1\"} 1"), HasSubstr("invalid label name"));
  EXPECT_THAT(rejection("a{,} 1"), HasSubstr("unexpected ','"));
  EXPECT_THAT(rejection("a{x=\"1\",,} 1"), HasSubstr("unexpected ','"));
  EXPECT_THAT(rejection("a{x=\"1\",x=\"2\"} 1"), HasSubstr("duplicate label name"));
  EXPECT_THAT(rejection("a{x=\"bad \\t escape\"} 1"), HasSubstr("invalid escape sequence \\t"));
  EXPECT_THAT(rejection("a{x=\"ends with \\"), HasSubstr("unterminated value"));
}

TEST(ExpositionParser, RejectsMissingOrNonNumericValues) {
  EXPECT_THAT(rejection("a"), HasSubstr("missing value"));
  EXPECT_THAT(rejection("a{x=\"1\"}"), HasSubstr("missing value"));
  EXPECT_THAT(rejection("a{x=\"1\"}   "), HasSubstr("missing value"));
  EXPECT_THAT(rejection("a one"), HasSubstr("non-numeric value \"one\""));
  EXPECT_THAT(rejection("a 1,5"), HasSubstr("non-numeric value"));
  EXPECT_THAT(rejection("a 0x10"), HasSubstr("non-numeric value"));
  EXPECT_THAT(rejection("a nan(123)"), HasSubstr("non-numeric value"));
  EXPECT_THAT(rejection("a --1"), HasSubstr("non-numeric value"));
  EXPECT_THAT(rejection("a 1e999"), HasSubstr("out of range"));
  EXPECT_THAT(rejection("a 1 12.5"), HasSubstr("invalid timestamp"));
  EXPECT_THAT(rejection("a 1 1000 extra"), HasSubstr("unexpected text"));
}

TEST(ExpositionParser, MalformedLinesAreSkippedAndTheRestParsed) {
  const auto r = parse(
      "good_one 1\n"
      "bad{ 2\n"
      "good_two{a=\"b\"} 3\n"
      "bad_value x\n"
      "good_three 4\n");
  ASSERT_EQ(r.samples.size(), 3u);
  EXPECT_EQ(r.samples[2].name, "good_three");
  ASSERT_EQ(r.errors.size(), 2u);
  EXPECT_EQ(r.errors[0].line, 2u);
  EXPECT_EQ(r.errors[1].line, 4u);
  EXPECT_EQ(r.sample_lines, 3u);
}

TEST(ExpositionParser, ErrorListIsBoundedButCounted) {
  std::string body;
  for (int i = 0; i < 500; ++i) body += "bad line\n";
  ExpositionParseOptions options;
  options.max_errors = 10;
  const auto r = parse_exposition(body, options);
  EXPECT_EQ(r.errors.size(), 10u);
  EXPECT_EQ(r.error_count, 500u);
}

TEST(ExpositionParser, ErrorReasonsQuoteBoundedInput) {
  const std::string long_value(100000, 'z');
  const auto reason = rejection("a " + long_value);
  EXPECT_LT(reason.size(), 200u);
}

TEST(ExpositionParser, KeepFilterSelectsSamplesButStillChecksTheRest) {
  ExpositionParseOptions options;
  options.keep = [](std::string_view name) { return name == "wanted"; };
  const auto r = parse_exposition("other 1\nwanted{a=\"1\"} 2\nother{ 3\nwanted 4\n", options);
  ASSERT_EQ(r.samples.size(), 2u);
  EXPECT_EQ(r.samples[0].value, 2.0);
  EXPECT_EQ(r.samples[1].value, 4.0);
  EXPECT_TRUE(r.samples[1].labels.empty());  // the reused scratch does not leak labels
  EXPECT_EQ(r.error_count, 1u);
  EXPECT_EQ(r.sample_lines, 3u);
}

// Lines the filter leaves out are checked without being copied: the filter changes which
// samples come out, never which lines are errors or why.
TEST(ExpositionParser, KeepFilterChecksLeftOutLinesExactlyAsKeptOnes) {
  const std::string body =
      "# TYPE other gauge\n"
      "other{gpu=\"0\",UUID=\"GPU-0123456789abcdef\",esc=\"a\\\"b\\\\c\\nd\"} 1\n"
      "wanted{gpu=\"0\",UUID=\"GPU-0123456789abcdef\",esc=\"a\\\"b\"} 2\n"
      "other{a=\"1\",a=\"2\"} 3\n"       // duplicate label name
      "other{a=\"bad \\x escape\"} 4\n"  // invalid escape
      "other{a=\"unterminated} 5\n"
      "other{a=\"1\"} not-a-number\n"
      "other{a=\"1\"} 6 12x\n"  // bad timestamp
      "wanted{b=\"1\",c=\"2\",d=\"3\"} 7\n"
      "wanted 8\n"
      "other{a=\"1\"} 9\n";
  ExpositionParseOptions all;
  const auto unfiltered = parse_exposition(body, all);
  ExpositionParseOptions filtered;
  filtered.keep = [](std::string_view name) { return name == "wanted"; };
  const auto r = parse_exposition(body, filtered);

  EXPECT_EQ(r.error_count, 5u);
  EXPECT_EQ(r.error_count, unfiltered.error_count);
  EXPECT_EQ(r.sample_lines, unfiltered.sample_lines);
  ASSERT_EQ(r.errors.size(), unfiltered.errors.size());
  for (std::size_t i = 0; i < r.errors.size(); ++i) {
    EXPECT_EQ(r.errors[i].line, unfiltered.errors[i].line);
    EXPECT_EQ(r.errors[i].reason, unfiltered.errors[i].reason);
  }
  std::vector<ExpositionSample> wanted;
  for (const auto& sample : unfiltered.samples) {
    if (sample.name == "wanted") wanted.push_back(sample);
  }
  ASSERT_EQ(r.samples.size(), 3u);
  ASSERT_EQ(wanted.size(), 3u);
  for (std::size_t i = 0; i < wanted.size(); ++i) {
    EXPECT_EQ(r.samples[i].name, wanted[i].name);
    EXPECT_EQ(r.samples[i].labels, wanted[i].labels);  // the reused labels leak nothing
    EXPECT_EQ(r.samples[i].value, wanted[i].value);
  }
  ASSERT_EQ(r.samples[0].labels.size(), 3u);
  EXPECT_EQ(r.samples[0].labels[2].value, "a\"b");
  EXPECT_TRUE(r.samples[2].labels.empty());
}

TEST(ExpositionParser, ArbitraryBytesNeverCrash) {
  std::string body;
  unsigned x = 12345;
  for (int i = 0; i < 200000; ++i) {
    x = x * 1103515245u + 12345u;
    const char alphabet[] = "a_{}=\",\\ \n#.e+-1NaIf\t\r\x01\xff";
    body += alphabet[(x >> 16) % (sizeof alphabet - 1)];
  }
  const auto r = parse(body);
  EXPECT_GE(r.error_count + r.sample_lines, 1u);
}

TEST(ExpositionParser, TenMegabyteBody) {
  std::string body;
  body.reserve(11 * 1024 * 1024);
  std::size_t expected = 0;
  double expected_sum = 0;
  for (int family = 0; body.size() < 10 * 1024 * 1024; ++family) {
    const std::string name = "bench_metric_" + std::to_string(family % 97) + "_total";
    body += "# HELP " + name + " A generated counter.\n# TYPE " + name + " counter\n";
    for (int i = 0; i < 50; ++i) {
      const double v = family * 50 + i;
      // append() piecewise: building the body must not dominate the test's run time
      body.append(name).append("{pod=\"pod-").append(std::to_string(i));
      body.append("\",namespace=\"ns-").append(std::to_string(family % 13));
      body.append("\",path=\"/a\\\\b\"} ").append(std::to_string(v)).append(" ");
      body.append(std::to_string(1700000000000LL + i)).append("\n");
      ++expected;
      expected_sum += v;
    }
  }
  ASSERT_GE(body.size(), 10u * 1024 * 1024);
  const auto r = parse(body);
  EXPECT_EQ(r.error_count, 0u);
  ASSERT_EQ(r.samples.size(), expected);
  double sum = 0;
  for (const auto& s : r.samples) sum += s.value;
  EXPECT_DOUBLE_EQ(sum, expected_sum);
  EXPECT_EQ(*r.samples.back().label("path"), "/a\\b");
}

}  // namespace
}  // namespace mx
