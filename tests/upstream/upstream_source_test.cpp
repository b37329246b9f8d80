#include "sources/upstream/upstream_source.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/recording_sinks.h"
#include "support/test_http_server.h"

namespace mx {
namespace {

using namespace std::chrono_literals;
using testing::RecordingSink;
using testing::run_until;
using testing::ServedResponse;
using testing::TestHttpServer;
using ::testing::UnorderedElementsAre;

MATCHER_P3(IsUpstream, metric, labels, value, "") {
  return arg.metric == metric && arg.labels == labels && arg.value == value;
}

using Labels = std::map<std::string, std::string>;

TEST(UpstreamFilter, TakesOnlyTheTwoCountersByExactSampleName) {
  ExpositionParseOptions options;
  options.format = ExpositionFormat::openmetrics;
  const auto parsed = parse_exposition(
      "# TYPE modal_webhook_requests counter\n"
      "modal_webhook_requests_total{method=\"CREATE\",status=\"mutated\"} 3\n"
      "modal_webhook_requests_created{method=\"CREATE\",status=\"mutated\"} 1.7e9\n"
      "# TYPE modal_operator_errors counter\n"
      "modal_operator_errors_total{error_type=\"ApiException\",component=\"kopf\"} 2\n"
      "modal_jobs_total{status=\"created\"} 9\n"
      "modal_webhook_requests_total_extra 1\n"
      "process_cpu_seconds_total 4\n"
      "# EOF\n",
      options);
  ASSERT_EQ(parsed.error_count, 0u);
  EXPECT_THAT(upstream_samples_from(parsed.samples),
              UnorderedElementsAre(
                  IsUpstream("modal_webhook_requests_total",
                             Labels{{"method", "CREATE"}, {"status", "mutated"}}, 3.0),
                  IsUpstream("modal_operator_errors_total",
                             Labels{{"error_type", "ApiException"}, {"component", "kopf"}}, 2.0)));
}

class UpstreamSourceTest : public ::testing::Test {
 protected:
  UpstreamSourceTest() {
    config_.enabled = true;
    config_.interval = 100ms;
    config_.timeout = 2s;
    config_.url = server_.url("/metrics");
    backoff_.initial = 1ms;
    backoff_.max = 5ms;
  }

  boost::asio::io_context io_;
  int webhook_count_ = 0;
  enum class Mode { ok, malformed, not_found } mode_ = Mode::ok;
  TestHttpServer server_{io_, [this](const std::string&) {
                           ServedResponse r;
                           r.content_type = "application/openmetrics-text; version=1.0.0";
                           ++webhook_count_;
                           if (mode_ == Mode::not_found) r.status = 404;
                           r.body =
                               "# TYPE modal_webhook_requests counter\n"
                               "modal_webhook_requests_total{method=\"CREATE\",status="
                               "\"mutated\"} " +
                               std::to_string(webhook_count_) +
                               "\n"
                               "modal_webhook_requests_created{method=\"CREATE\",status="
                               "\"mutated\"} 1700000000\n"
                               "python_gc_objects_collected_total{generation=\"0\"} 10\n";
                           if (mode_ == Mode::malformed)
                             r.body += "modal_operator_errors_total{ 1\n";
                           r.body += "# EOF\n";
                           return r;
                         }};
  RecordingSink sink_;
  UpstreamConfig config_;
  BackoffConfig backoff_;
};

TEST_F(UpstreamSourceTest, PassesTheFullSetEachScrape) {
  UpstreamSource source(io_, config_, backoff_, sink_, sink_);
  source.start();
  ASSERT_TRUE(run_until(io_, [&] { return sink_.upstream_sets.size() >= 2; }));
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_THAT(sink_.upstream_sets[i],
                UnorderedElementsAre(IsUpstream("modal_webhook_requests_total",
                                                Labels{{"method", "CREATE"}, {"status", "mutated"}},
                                                static_cast<double>(i + 1))));
  }
  EXPECT_GE(sink_.succeeded["upstream"], 2);
  EXPECT_TRUE(sink_.errors.empty());

  // A malformed line might be one of the counters: the set is not replaced by a partial one.
  mode_ = Mode::malformed;
  const auto sets = sink_.upstream_sets.size();
  ASSERT_TRUE(run_until(io_, [&] { return sink_.error_count("upstream", "parse") >= 2; }));
  EXPECT_EQ(sink_.upstream_sets.size(), sets);
  EXPECT_GE(sink_.failed["upstream"], 2);

  mode_ = Mode::not_found;
  ASSERT_TRUE(run_until(io_, [&] { return sink_.error_count("upstream", "http_4xx") >= 1; }));
  EXPECT_EQ(sink_.upstream_sets.size(), sets);

  mode_ = Mode::ok;
  ASSERT_TRUE(run_until(io_, [&] { return sink_.upstream_sets.size() > sets; }));
  source.stop();
}

TEST_F(UpstreamSourceTest, ConnectionRefusedIsCounted) {
  config_.url = "http://127.0.0.1:" + std::to_string(testing::closed_port()) + "/metrics";
  UpstreamSource source(io_, config_, backoff_, sink_, sink_);
  source.start();
  ASSERT_TRUE(run_until(io_, [&] { return sink_.error_count("upstream", "connection") >= 2; }));
  EXPECT_TRUE(sink_.upstream_sets.empty());
  EXPECT_EQ(sink_.succeeded["upstream"], 0);
}

TEST_F(UpstreamSourceTest, DisabledOrWithoutUrlDoesNothing) {
  config_.enabled = false;
  UpstreamSource disabled(io_, config_, backoff_, sink_, sink_);
  disabled.start();
  config_.enabled = true;
  config_.url.clear();
  UpstreamSource without_url(io_, config_, backoff_, sink_, sink_);
  without_url.start();
  io_.poll();
  EXPECT_EQ(webhook_count_, 0);
  EXPECT_TRUE(sink_.succeeded.empty());
  EXPECT_TRUE(sink_.failed.empty());
}

}  // namespace
}  // namespace mx
