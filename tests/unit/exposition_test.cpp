#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "exposition/gzip.h"
#include "exposition/negotiation.h"
#include "exposition/snapshot.h"
#include "exposition/text_format.h"

namespace mx {
namespace {

TEST(TextFormat, Values) {
  auto v = [](double d) {
    std::string s;
    append_value(s, d);
    return s;
  };
  EXPECT_EQ(v(3), "3");
  EXPECT_EQ(v(-2), "-2");
  EXPECT_EQ(v(0.25), "0.25");
  EXPECT_EQ(v(1e300), "1e+300");
  EXPECT_EQ(v(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(v(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(v(std::nan("")), "NaN");
  EXPECT_EQ(std::stod(v(0.1 + 0.2)), 0.1 + 0.2);  // round-trips
}

TEST(TextFormat, EscapesLabelValues) {
  std::string out;
  append_sample(out, "m", {{"a", "x\"y\\z\nw"}, {"b", ""}}, 1);
  EXPECT_EQ(out, "m{a=\"x\\\"y\\\\z\\nw\",b=\"\"} 1\n");
  out.clear();
  append_sample(out, "m", {}, 2);
  EXPECT_EQ(out, "m 2\n");
}

TEST(TextFormat, HeadersPerFormat) {
  std::string text, om;
  append_family_header(text, ExpositionFormat::text, "x_total", "Help \\ me\nplease",
                       MetricType::counter);
  append_family_header(om, ExpositionFormat::openmetrics, "x_total", "Help", MetricType::counter);
  EXPECT_EQ(text, "# HELP x_total Help \\\\ me\\nplease\n# TYPE x_total counter\n");
  EXPECT_EQ(om, "# HELP x Help\n# TYPE x counter\n");
}

TEST(TextFormat, HistogramIsCumulative) {
  std::string out;
  append_histogram(out, "h", {{"g", "T4"}}, {1, 5}, {2, 0, 3}, 42.5);
  EXPECT_EQ(out,
            "h_bucket{g=\"T4\",le=\"1\"} 2\nh_bucket{g=\"T4\",le=\"5\"} 2\n"
            "h_bucket{g=\"T4\",le=\"+Inf\"} 5\nh_sum{g=\"T4\"} 42.5\nh_count{g=\"T4\"} 5\n");
}

TEST(Snapshot, FragmentsPerObject) {
  FamilySet set;
  auto a = set.add_family({"a_total", "A.", MetricType::counter});
  auto b = set.add_family({"b", "B.", MetricType::gauge});
  auto empty = set.add_family({"never", "No samples.", MetricType::gauge});
  (void)empty;
  set.set(a, "uid2", "a_total{j=\"2\"} 2\n");
  set.set(a, "uid1", "a_total{j=\"1\"} 1\n");
  set.set(b, "uid1", "b{j=\"1\"} 7\n");
  auto s1 = set.publish(6);
  EXPECT_EQ(s1->body(ExpositionFormat::text),
            "# HELP a_total A.\n# TYPE a_total counter\na_total{j=\"1\"} 1\na_total{j=\"2\"} 2\n"
            "# HELP b B.\n# TYPE b gauge\nb{j=\"1\"} 7\n");
  EXPECT_EQ(s1->body(ExpositionFormat::openmetrics),
            "# HELP a A.\n# TYPE a counter\na_total{j=\"1\"} 1\na_total{j=\"2\"} 2\n"
            "# HELP b B.\n# TYPE b gauge\nb{j=\"1\"} 7\n");

  // One object changes: only its fragment is replaced; the old snapshot is untouched.
  set.set(a, "uid1", "a_total{j=\"1\"} 5\n");
  set.remove_object("uid2");
  set.set(b, "uid1", "");
  auto s2 = set.publish(6);
  EXPECT_EQ(s2->body(ExpositionFormat::text),
            "# HELP a_total A.\n# TYPE a_total counter\na_total{j=\"1\"} 5\n");
  EXPECT_NE(s1->body(ExpositionFormat::text), s2->body(ExpositionFormat::text));
  EXPECT_GT(s2->generation(), s1->generation());
  EXPECT_EQ(set.series_bytes(), std::string("a_total{j=\"1\"} 5\n").size());
}

TEST(Gzip, PrefixPlusTailIsOneValidStream) {
  std::string big;
  for (int i = 0; i < 20000; ++i)
    big += "modal_job_replicas{job_name=\"j" + std::to_string(i) + "\"} 1\n";
  const auto prefix = deflate_part(big, 6, false);
  const std::string tail = "process_open_fds 12\n";
  const std::string gz = gzip_header() + prefix.bytes + gzip_tail(prefix, tail, 6);
  EXPECT_EQ(gzip_decompress(gz), big + tail);
  EXPECT_LT(gz.size(), big.size() / 4);
  EXPECT_EQ(gzip_decompress(gzip_compress("", 1)), "");
  EXPECT_EQ(gzip_decompress(gzip_compress("abc", 9)), "abc");
  EXPECT_THROW(gzip_decompress("not gzip"), std::runtime_error);
}

TEST(Snapshot, DeflatedOnceAndShared) {
  FamilySet set;
  auto a = set.add_family({"a", "A.", MetricType::gauge});
  set.set(a, "k", "a 1\n");
  auto s = set.publish(6);
  const auto* first = &s->deflated(ExpositionFormat::text);
  EXPECT_EQ(first, &s->deflated(ExpositionFormat::text));
  EXPECT_EQ(gzip_decompress(gzip_header() + first->bytes + gzip_tail(*first, "", 6)),
            s->body(ExpositionFormat::text));
}

TEST(Negotiation, Format) {
  EXPECT_EQ(negotiate_format(""), ExpositionFormat::text);
  EXPECT_EQ(negotiate_format("text/plain"), ExpositionFormat::text);
  EXPECT_EQ(negotiate_format("application/json"), ExpositionFormat::text);
  // What Prometheus 2.42 sends.
  EXPECT_EQ(negotiate_format("application/openmetrics-text;version=1.0.0,application/"
                             "openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,"
                             "*/*;q=0.1"),
            ExpositionFormat::openmetrics);
  EXPECT_EQ(negotiate_format("application/openmetrics-text; version=1.0.0"),
            ExpositionFormat::openmetrics);
  EXPECT_EQ(negotiate_format("text/plain;version=0.0.4;q=0.9,application/openmetrics-text;q=0.5"),
            ExpositionFormat::text);
  EXPECT_EQ(negotiate_format("application/openmetrics-text;version=2.0.0"), ExpositionFormat::text);
  EXPECT_EQ(negotiate_format("application/openmetrics-text;q=0"), ExpositionFormat::text);
}

TEST(Negotiation, Gzip) {
  EXPECT_TRUE(accepts_gzip("gzip"));
  EXPECT_TRUE(accepts_gzip("deflate, gzip;q=0.5"));
  EXPECT_TRUE(accepts_gzip("*"));
  EXPECT_FALSE(accepts_gzip(""));
  EXPECT_FALSE(accepts_gzip("identity"));
  EXPECT_FALSE(accepts_gzip("gzip;q=0"));
  EXPECT_FALSE(accepts_gzip("gzip;q=0, *"));
}

}  // namespace
}  // namespace mx
