#include "sources/telemetry/telemetry_source.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <mutex>

#include "common/log.h"
#include "support/recording_sinks.h"
#include "support/test_http_server.h"

namespace mx {
namespace {

using namespace std::chrono_literals;
using testing::RecordingSink;
using testing::run_until;
using testing::ServedResponse;
using testing::TestHttpServer;

// Serves changing telemetry: every request to /dcgm advances the byte counters by 1 MB received
// and 0.5 MB sent per second of the (sample-timestamp) clock, and the utilization by one point.
class TelemetryServer {
 public:
  explicit TelemetryServer(boost::asio::io_context& io)
      : server_(io, [this](const std::string& target) { return answer(target); }) {}

  std::string url(std::string_view path) const { return server_.url(path); }
  int hits(const std::string& path) const {
    const auto it = hits_.find(path);
    return it == hits_.end() ? 0 : it->second;
  }
  void stop() { server_.stop(); }
  int max_in_flight() const { return server_.max_in_flight(); }
  TestHttpServer& http() { return server_; }
  bool flaky_down = true;

 private:
  ServedResponse answer(const std::string& request_target) {
    const std::string target = request_target.substr(0, request_target.find('?'));
    const int n = ++hits_[target];
    ServedResponse r;
    if (target == "/flaky") {
      if (flaky_down) {
        r.status = 404;
      } else {
        r.body = "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\"} 10\n";
      }
    } else if (target == "/dcgm") {
      const std::string ts = " " + std::to_string(1700000000000LL + n * 1000LL);
      r.body =
          "# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).\n"
          "# TYPE DCGM_FI_DEV_GPU_UTIL gauge\n"
          "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\",UUID=\"GPU-a\"} " +
          std::to_string(40 + n) +
          "\n"
          "DCGM_FI_DEV_GPU_UTIL{gpu=\"1\",UUID=\"GPU-b\"} " +
          std::to_string(60 + n) +
          "\n"
          "# TYPE node_network_receive_bytes_total counter\n"
          "node_network_receive_bytes_total{device=\"eth0\"} " +
          std::to_string(n * 1000000) + ts +
          "\n"
          "node_network_receive_bytes_total{device=\"lo\"} " +
          std::to_string(n * 900000000LL) + ts +
          "\n"
          "node_network_transmit_bytes_total{device=\"eth0\"} " +
          std::to_string(n * 500000) + ts + "\n";
    } else if (target == "/ratio") {
      r.content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
      r.body =
          "# TYPE nvidia_gpu_utilization_ratio gauge\n"
          "nvidia_gpu_utilization_ratio{gpu=\"0\"} 0.25 1700000000.5\n"
          "# EOF\n";
    } else if (target == "/held") {
      r.body = "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\"} 50\n";
      r.delay = 50ms;  // keeps scrapes in flight long enough to overlap
    } else if (target == "/partly-bad") {
      r.body = "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\"} 30\nthis line is broken\n";
    } else if (target == "/missing") {
      r.status = 404;
    } else if (target == "/broken") {
      r.status = 500;
    } else if (target == "/slow") {
      r.delay = 30s;
    } else if (target == "/huge") {
      r.body = std::string(64 * 1024, '#');
    } else if (target == "/html") {
      r.content_type = "text/html";
      r.body = "<html><body>Not metrics</body></html>\n";
    }
    return r;
  }

  std::map<std::string, int> hits_;
  TestHttpServer server_;
};

class TelemetrySourceTest : public ::testing::Test {
 protected:
  TelemetrySourceTest() {
    config_.interval = 100ms;
    config_.timeout = 2s;  // generous: a loaded machine must not turn a success into a timeout
    config_.max_body_bytes = 16 * 1024;
    backoff_.initial = 1ms;  // retry failing targets every round in these tests
    backoff_.max = 5ms;
  }

  const JobTelemetry& last(const std::string& uid) { return sink_.telemetry_by_uid.at(uid).back(); }

  boost::asio::io_context io_;
  TelemetryServer server_{io_};
  RecordingSink sink_;
  TelemetryConfig config_;
  BackoffConfig backoff_;
};

TEST_F(TelemetrySourceTest, DerivesUtilizationAndBandwidth) {
  sink_.targets = {{"job-a", server_.url("/dcgm")}, {"job-b", server_.url("/ratio")}};
  TelemetrySource source(io_, config_, backoff_, sink_, sink_);
  source.start();
  ASSERT_TRUE(run_until(io_, [&] { return sink_.reports("job-a") >= 3; }));

  const auto& first = sink_.telemetry_by_uid.at("job-a").front();
  ASSERT_TRUE(first.gpu_utilization);
  EXPECT_DOUBLE_EQ(*first.gpu_utilization, (41 + 61) / 2.0 / 100.0);
  EXPECT_FALSE(first.ingress_mbps);  // one scrape: no rate yet
  EXPECT_FALSE(first.egress_mbps);

  const auto& third = sink_.telemetry_by_uid.at("job-a")[2];
  ASSERT_TRUE(third.gpu_utilization);
  EXPECT_DOUBLE_EQ(*third.gpu_utilization, (43 + 63) / 2.0 / 100.0);
  ASSERT_TRUE(third.ingress_mbps);
  ASSERT_TRUE(third.egress_mbps);
  EXPECT_DOUBLE_EQ(*third.ingress_mbps, 8.0);  // 1 MB/s, loopback excluded
  EXPECT_DOUBLE_EQ(*third.egress_mbps, 4.0);

  ASSERT_GE(sink_.reports("job-b"), 1u);
  const auto& b = last("job-b");
  ASSERT_TRUE(b.gpu_utilization);
  EXPECT_DOUBLE_EQ(*b.gpu_utilization, 0.25);
  EXPECT_FALSE(b.ingress_mbps);

  EXPECT_GE(sink_.succeeded["telemetry"], 2);
  EXPECT_EQ(sink_.failed["telemetry"], 0);
  EXPECT_TRUE(sink_.errors.empty());

  // The job stops being a target: its telemetry is forgotten once, and it is not scraped again.
  sink_.targets = {{"job-b", server_.url("/ratio")}};
  ASSERT_TRUE(run_until(io_, [&] { return !sink_.forgotten.empty(); }));
  EXPECT_EQ(sink_.forgotten, std::vector<std::string>{"job-a"});
  const int hits = server_.hits("/dcgm");
  const int rounds = sink_.succeeded["telemetry"];
  ASSERT_TRUE(run_until(io_, [&] { return sink_.succeeded["telemetry"] >= rounds + 2; }));
  EXPECT_EQ(server_.hits("/dcgm"), hits);
  EXPECT_EQ(sink_.forgotten.size(), 1u);
  source.stop();
}

TEST_F(TelemetrySourceTest, AnEndpointKeepsItsConnectionAcrossRounds) {
  server_.http().set_keep_alive(true);
  sink_.targets = {{"job-a", server_.url("/dcgm")}, {"job-b", server_.url("/ratio")}};
  TelemetrySource source(io_, config_, backoff_, sink_, sink_);
  source.start();
  ASSERT_TRUE(run_until(io_, [&] { return sink_.succeeded["telemetry"] >= 4; }));
  // Both URLs name one host and port: one kept connection carries every scrape of both (the
  // two scrapes of a round may each open one while the other is in flight).
  EXPECT_GE(server_.hits("/dcgm"), 4);
  EXPECT_LE(server_.http().connections_accepted(), 2);

  // The server closes its idle connections: the next round connects again and succeeds.
  server_.http().close_connections();
  const int rounds = sink_.succeeded["telemetry"];
  ASSERT_TRUE(run_until(io_, [&] { return sink_.succeeded["telemetry"] >= rounds + 2; }));
  EXPECT_EQ(sink_.failed["telemetry"], 0);
  EXPECT_TRUE(sink_.errors.empty());
  EXPECT_LE(server_.http().connections_accepted(), 4);
  source.stop();
}

TEST_F(TelemetrySourceTest, FailuresAreCountedByType) {
  sink_.targets = {{"missing", server_.url("/missing")},
                   {"broken", server_.url("/broken")},
                   {"slow", server_.url("/slow")},
                   {"huge", server_.url("/huge")},
                   {"html", server_.url("/html")},
                   {"refused", "http://127.0.0.1:" + std::to_string(testing::closed_port()) + "/"},
                   {"bad-url", "ftp://example.com/metrics"},
                   {"good", server_.url("/ratio")}};
  config_.timeout = 500ms;
  TelemetrySource source(io_, config_, backoff_, sink_, sink_);
  source.start();
  ASSERT_TRUE(run_until(io_, [&] { return sink_.failed["telemetry"] >= 2; }));
  source.stop();
  server_.stop();

  EXPECT_GE(sink_.error_count("telemetry", "http_4xx"), 2);
  EXPECT_GE(sink_.error_count("telemetry", "http_5xx"), 2);
  EXPECT_GE(sink_.error_count("telemetry", "timeout"), 2);
  // huge (over the body cap) and html (not an exposition)
  EXPECT_GE(sink_.error_count("telemetry", "parse"), 4);
  // refused and bad-url
  EXPECT_GE(sink_.error_count("telemetry", "connection"), 4);
  EXPECT_EQ(sink_.succeeded["telemetry"], 0);
  // A failed target's series go away (all fields empty), the good one still reports.
  const auto& missing = last("missing");
  EXPECT_FALSE(missing.gpu_utilization || missing.ingress_mbps || missing.egress_mbps);
  ASSERT_TRUE(last("good").gpu_utilization);
}

TEST_F(TelemetrySourceTest, ConcurrentScrapesAreLimited) {
  for (int i = 0; i < 40; ++i) {
    sink_.targets.push_back({"job-" + std::to_string(i), server_.url("/held")});
  }
  TelemetrySource source(io_, config_, backoff_, sink_, sink_);
  source.start();
  ASSERT_TRUE(run_until(io_, [&] { return sink_.succeeded["telemetry"] >= 1; }));
  source.stop();
  EXPECT_EQ(sink_.telemetry_by_uid.size(), 40u);
  EXPECT_EQ(server_.hits("/held"), 40);  // one round: every target once
  EXPECT_GT(server_.max_in_flight(), 1);
  EXPECT_LE(server_.max_in_flight(), static_cast<int>(TelemetrySource::kMaxConcurrentScrapes));
}

TEST_F(TelemetrySourceTest, PartlyMalformedBodyIsUsedAndCounted) {
  sink_.targets = {{"job", server_.url("/partly-bad")}};
  TelemetrySource source(io_, config_, backoff_, sink_, sink_);
  source.start();
  ASSERT_TRUE(run_until(io_, [&] { return sink_.reports("job") >= 1; }));
  source.stop();
  ASSERT_TRUE(last("job").gpu_utilization);
  EXPECT_DOUBLE_EQ(*last("job").gpu_utilization, 0.3);
  EXPECT_EQ(sink_.error_count("telemetry", "parse"), 1);
}

TEST_F(TelemetrySourceTest, NoTargetsIsASuccessfulRound) {
  TelemetrySource source(io_, config_, backoff_, sink_, sink_);
  source.start();
  ASSERT_TRUE(run_until(io_, [&] { return sink_.succeeded["telemetry"] >= 2; }));
  EXPECT_EQ(sink_.failed["telemetry"], 0);
  EXPECT_GE(sink_.last_poll_seconds, 0.0);
}

// While the first LIST is coming in, the first round waits for it, and starts as soon as it is
// complete rather than an interval later (an hour here: only that start can scrape in time).
TEST_F(TelemetrySourceTest, TheFirstRoundWaitsForTheTargetsToSettle) {
  config_.interval = 1h;
  sink_.targets = {{"job-a", server_.url("/dcgm")}};
  sink_.targets_settling = true;
  TelemetrySource source(io_, config_, backoff_, sink_, sink_);
  source.start();
  ASSERT_TRUE(run_until(io_, [&] { return sink_.settling_checks >= 3; }));
  EXPECT_EQ(server_.hits("/dcgm"), 0);
  EXPECT_TRUE(sink_.succeeded.empty());

  sink_.targets.push_back({"job-b", server_.url("/ratio")});
  sink_.targets_settling = false;
  ASSERT_TRUE(run_until(io_, [&] { return sink_.succeeded["telemetry"] >= 1; }));
  EXPECT_EQ(server_.hits("/dcgm"), 1);
  EXPECT_EQ(server_.hits("/ratio"), 1);
  source.stop();
}

// A LIST that takes longer than an interval does not hold the scrapes back further.
TEST_F(TelemetrySourceTest, SettlingHoldsTheFirstRoundForOneIntervalAtMost) {
  sink_.targets = {{"job-a", server_.url("/dcgm")}};
  sink_.targets_settling = true;
  TelemetrySource source(io_, config_, backoff_, sink_, sink_);
  source.start();
  ASSERT_TRUE(run_until(io_, [&] { return sink_.reports("job-a") >= 2; }));
  source.stop();
}

TEST_F(TelemetrySourceTest, DisabledDoesNothing) {
  config_.enabled = false;
  sink_.targets = {{"job-a", server_.url("/dcgm")}};
  TelemetrySource source(io_, config_, backoff_, sink_, sink_);
  source.start();
  io_.poll();
  EXPECT_TRUE(sink_.succeeded.empty());
  EXPECT_EQ(server_.hits("/dcgm"), 0);
}

TEST_F(TelemetrySourceTest, FailureIsLoggedOncePerChangeOfState) {
  std::mutex mu;
  std::vector<std::string> lines;
  log::set_sink([&](std::string_view line) {
    std::lock_guard lock(mu);
    lines.emplace_back(line);
  });
  auto count = [&](std::string_view needle) {
    std::lock_guard lock(mu);
    int n = 0;
    for (const auto& l : lines) n += l.find(needle) != std::string::npos;
    return n;
  };

  sink_.targets = {{"job", server_.url("/flaky?token=s3cret")}};
  TelemetrySource source(io_, config_, backoff_, sink_, sink_);
  source.start();
  ASSERT_TRUE(run_until(io_, [&] { return sink_.error_count("telemetry", "http_4xx") >= 3; }));
  EXPECT_EQ(count("telemetry scrape failed"), 1);

  server_.flaky_down = false;
  ASSERT_TRUE(run_until(io_, [&] { return sink_.succeeded["telemetry"] >= 2; }));
  EXPECT_EQ(count("telemetry scrape recovered"), 1);

  server_.flaky_down = true;
  ASSERT_TRUE(run_until(io_, [&] { return sink_.error_count("telemetry", "http_4xx") >= 6; }));
  EXPECT_EQ(count("telemetry scrape failed"), 2);
  EXPECT_EQ(count("telemetry scrape recovered"), 1);
  source.stop();
  log::set_sink({});
  EXPECT_EQ(count("s3cret"), 0);  // the query string (where tokens live) never reaches logs
}

}  // namespace
}  // namespace mx
