#include "sources/telemetry/telemetry_derive.h"

#include <gtest/gtest.h>

#include <string>

namespace mx {
namespace {

std::vector<ExpositionSample> samples(std::string_view body) {
  const auto r = parse_exposition(body);
  EXPECT_EQ(r.error_count, 0u) << (r.errors.empty() ? "" : r.errors[0].reason);
  return r.samples;
}

TEST(GpuUtilization, MeanOfDcgmPercentPerGpu) {
  const auto u = gpu_utilization_ratio(
      samples("DCGM_FI_DEV_GPU_UTIL{gpu=\"0\",UUID=\"GPU-a\",modelName=\"NVIDIA A100\"} 50\n"
              "DCGM_FI_DEV_GPU_UTIL{gpu=\"1\",UUID=\"GPU-b\",modelName=\"NVIDIA A100\"} 70\n"
              "DCGM_FI_DEV_MEM_COPY_UTIL{gpu=\"0\"} 99\n"));
  ASSERT_TRUE(u);
  EXPECT_DOUBLE_EQ(*u, 0.6);
}

TEST(GpuUtilization, OneGpuExportedTwiceCountsOnce) {
  const auto u =
      gpu_utilization_ratio(samples("DCGM_FI_DEV_GPU_UTIL{gpu=\"0\",pod=\"x\"} 100\n"
                                    "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\",pod=\"x\"} 100\n"
                                    "DCGM_FI_DEV_GPU_UTIL{gpu=\"1\",pod=\"x\"} 0\n"));
  ASSERT_TRUE(u);
  EXPECT_DOUBLE_EQ(*u, 0.5);
}

TEST(GpuUtilization, RatioSeriesWhenNoDcgm) {
  const auto u =
      gpu_utilization_ratio(samples("nvidia_gpu_utilization_ratio{device=\"nvidia0\"} 0.25\n"
                                    "nvidia_gpu_utilization_ratio{device=\"nvidia1\"} 0.75\n"
                                    "nvidia_gpu_utilization_ratio{device=\"nvidia2\"} 0.5\n"));
  ASSERT_TRUE(u);
  EXPECT_DOUBLE_EQ(*u, 0.5);
  const auto other = gpu_utilization_ratio(samples("my_gpu_utilization_ratio 0.3\n"));
  ASSERT_TRUE(other);
  EXPECT_DOUBLE_EQ(*other, 0.3);
}

TEST(GpuUtilization, DcgmWinsOverRatios) {
  const auto u =
      gpu_utilization_ratio(samples("nvidia_gpu_utilization_ratio{gpu=\"0\"} 0.9\n"
                                    "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\"} 20\n"));
  ASSERT_TRUE(u);
  EXPECT_DOUBLE_EQ(*u, 0.2);
}

TEST(GpuUtilization, ClampedToUnitInterval) {
  EXPECT_DOUBLE_EQ(*gpu_utilization_ratio(samples("DCGM_FI_DEV_GPU_UTIL{gpu=\"0\"} 140\n")), 1.0);
  EXPECT_DOUBLE_EQ(*gpu_utilization_ratio(samples("x_gpu_utilization_ratio -0.5\n")), 0.0);
}

TEST(GpuUtilization, AbsentWithoutData) {
  EXPECT_FALSE(gpu_utilization_ratio(samples("node_load1 0.5\n")));
  EXPECT_FALSE(gpu_utilization_ratio({}));
  EXPECT_FALSE(gpu_utilization_ratio(samples("DCGM_FI_DEV_GPU_UTIL{gpu=\"0\"} NaN\n")));
  // a name that only contains the suffix somewhere else does not count
  EXPECT_FALSE(gpu_utilization_ratio(samples("gpu_utilization_ratio_total 0.5\n")));
}

NetworkCounters counters(std::string_view body, double scrape_time) {
  return network_counters(samples(body), scrape_time);
}

TEST(NetworkBandwidth, FirstScrapeHasNoRate) {
  const auto c = counters("node_network_receive_bytes_total{device=\"eth0\"} 100\n", 1);
  EXPECT_EQ(c.receive.size(), 1u);
  EXPECT_TRUE(c.transmit.empty());
  EXPECT_FALSE(c.sample_time);
}

TEST(NetworkBandwidth, RateFromScrapeTimesSummedOverDevicesWithoutLoopback) {
  const auto a = counters(
      "node_network_receive_bytes_total{device=\"eth0\"} 1000000\n"
      "node_network_receive_bytes_total{device=\"eth1\"} 0\n"
      "node_network_receive_bytes_total{device=\"lo\"} 0\n"
      "node_network_transmit_bytes_total{device=\"eth0\"} 0\n"
      "node_network_transmit_bytes_total{device=\"lo\"} 0\n",
      100.0);
  const auto b = counters(
      "node_network_receive_bytes_total{device=\"eth0\"} 3000000\n"
      "node_network_receive_bytes_total{device=\"eth1\"} 500000\n"
      "node_network_receive_bytes_total{device=\"lo\"} 999999999\n"
      "node_network_transmit_bytes_total{device=\"eth0\"} 1250000\n"
      "node_network_transmit_bytes_total{device=\"lo\"} 999999999\n",
      110.0);
  const auto bw = network_bandwidth(a, b);
  ASSERT_TRUE(bw.ingress_mbps);
  ASSERT_TRUE(bw.egress_mbps);
  // (2e6 + 0.5e6) bytes * 8 / 1e6 / 10 s
  EXPECT_DOUBLE_EQ(*bw.ingress_mbps, 2.0);
  EXPECT_DOUBLE_EQ(*bw.egress_mbps, 1.0);
}

TEST(NetworkBandwidth, SampleTimestampsWinOverScrapeTimes) {
  const auto a = counters("node_network_receive_bytes_total{device=\"eth0\"} 0 1000000\n", 50);
  const auto b =
      counters("node_network_receive_bytes_total{device=\"eth0\"} 1000000 1002000\n", 51);
  ASSERT_TRUE(b.sample_time);
  EXPECT_DOUBLE_EQ(*b.sample_time, 1002.0);
  const auto bw = network_bandwidth(a, b);
  ASSERT_TRUE(bw.ingress_mbps);
  EXPECT_DOUBLE_EQ(*bw.ingress_mbps, 4.0);  // 8e6 bits over 2 s of the target's clock
  EXPECT_FALSE(bw.egress_mbps);
}

TEST(NetworkBandwidth, MixedTimestampsFallBackToScrapeTimes) {
  const auto a = counters("node_network_receive_bytes_total{device=\"eth0\"} 0 1000000\n", 50);
  const auto b = counters("node_network_receive_bytes_total{device=\"eth0\"} 1000000\n", 54);
  const auto bw = network_bandwidth(a, b);
  ASSERT_TRUE(bw.ingress_mbps);
  EXPECT_DOUBLE_EQ(*bw.ingress_mbps, 2.0);
}

TEST(NetworkBandwidth, CounterResetCountsTheNewValue) {
  const auto a = counters(
      "node_network_receive_bytes_total{device=\"eth0\"} 5000000\n"
      "node_network_receive_bytes_total{device=\"eth1\"} 1000000\n",
      0);
  const auto b = counters(
      "node_network_receive_bytes_total{device=\"eth0\"} 250000\n"    // reset: delta 250000
      "node_network_receive_bytes_total{device=\"eth1\"} 1750000\n",  // delta 750000
      1);
  const auto bw = network_bandwidth(a, b);
  ASSERT_TRUE(bw.ingress_mbps);
  EXPECT_DOUBLE_EQ(*bw.ingress_mbps, 8.0);
}

TEST(NetworkBandwidth, DeviceMissingInOneScrapeContributesNothing) {
  const auto a = counters(
      "node_network_transmit_bytes_total{device=\"eth0\"} 0\n"
      "node_network_transmit_bytes_total{device=\"eth1\"} 0\n",
      0);
  const auto b = counters(
      "node_network_transmit_bytes_total{device=\"eth0\"} 125000\n"
      "node_network_transmit_bytes_total{device=\"eth2\"} 99999999\n",
      1);
  const auto bw = network_bandwidth(a, b);
  ASSERT_TRUE(bw.egress_mbps);
  EXPECT_DOUBLE_EQ(*bw.egress_mbps, 1.0);
  // nothing in common at all: no rate rather than a made-up 0
  const auto c = counters("node_network_transmit_bytes_total{device=\"eth9\"} 5\n", 2);
  EXPECT_FALSE(network_bandwidth(b, c).egress_mbps);
}

TEST(NetworkBandwidth, NoElapsedTimeNoRate) {
  const auto a = counters("node_network_receive_bytes_total{device=\"eth0\"} 0 5000\n", 0);
  const auto b = counters("node_network_receive_bytes_total{device=\"eth0\"} 10 5000\n", 1);
  EXPECT_FALSE(elapsed_seconds(a, b));
  EXPECT_FALSE(network_bandwidth(a, b).ingress_mbps);
}

TEST(NetworkBandwidth, OnlyLoopbackMeansNoRate) {
  const auto a = counters("node_network_receive_bytes_total{device=\"lo\"} 0\n", 0);
  const auto b = counters("node_network_receive_bytes_total{device=\"lo\"} 100\n", 1);
  EXPECT_TRUE(b.receive.empty());
  EXPECT_FALSE(network_bandwidth(a, b).ingress_mbps);
}

TEST(TelemetryMetricFilter, KeepsOnlyWhatTheDerivationsRead) {
  EXPECT_TRUE(is_telemetry_metric("DCGM_FI_DEV_GPU_UTIL"));
  EXPECT_TRUE(is_telemetry_metric("nvidia_gpu_utilization_ratio"));
  EXPECT_TRUE(is_telemetry_metric("node_network_receive_bytes_total"));
  EXPECT_TRUE(is_telemetry_metric("node_network_transmit_bytes_total"));
  EXPECT_FALSE(is_telemetry_metric("node_network_receive_packets_total"));
  EXPECT_FALSE(is_telemetry_metric("DCGM_FI_DEV_MEM_COPY_UTIL"));
}

}  // namespace
}  // namespace mx
