// The process_* series are read on every scrape from getrusage(), /proc/self/statm and
// /proc/self/fd (kept open, re-read each time; process_start_time_seconds once, from
// /proc/self/stat): each must agree with what the process can see of itself, scrape after scrape.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <string>

#include "metrics/process_metrics.h"

namespace mx {
namespace {

std::map<std::string, double> collect(const ProcessCollector& collector) {
  std::map<std::string, double> out;
  for (const auto& family : collector.Collect()) {
    EXPECT_EQ(family.metric.size(), 1u) << family.name;
    if (family.metric.empty()) continue;
    const auto& m = family.metric.front();
    out[family.name] =
        family.type == prometheus::MetricType::Counter ? m.counter.value : m.gauge.value;
  }
  return out;
}

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

double status_kib(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string k;
  double v = 0;
  while (in >> k) {
    if (k == key + ":") {
      in >> v;
      return v;
    }
    in.ignore(1 << 16, '\n');
  }
  return -1;
}

TEST(ProcessMetrics, AgreeWithWhatTheProcessSeesOfItself) {
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  ProcessCollector collector;
  volatile double spin = 0;  // some CPU time to count
  for (int i = 0; i < 20'000'000; ++i) spin = spin + 1;
  const double cpu_before = cpu_seconds();
  auto m = collect(collector);
  const double cpu_after = cpu_seconds();

  EXPECT_GE(m.at("process_cpu_seconds_total"), cpu_before);
  EXPECT_LE(m.at("process_cpu_seconds_total"), cpu_after);
  EXPECT_GT(m.at("process_cpu_seconds_total"), 0.0);

  const double rss = status_kib("VmRSS") * 1024, vsize = status_kib("VmSize") * 1024;
  EXPECT_NEAR(m.at("process_resident_memory_bytes"), rss, rss * 0.25);
  EXPECT_NEAR(m.at("process_virtual_memory_bytes"), vsize, vsize * 0.05);

  // The test process started before this test and at most an hour before it.
  EXPECT_LE(m.at("process_start_time_seconds"), now + 1);
  EXPECT_GT(m.at("process_start_time_seconds"), now - 3600);

  rlimit limit{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &limit), 0);
  EXPECT_EQ(m.at("process_max_fds"), static_cast<double>(limit.rlim_cur));

  // Every open fd, as a listing of our own sees them (minus the listing's own fd).
  int listed = 0;
  if (DIR* dir = opendir("/proc/self/fd")) {
    while (const dirent* e = readdir(dir)) listed += e->d_name[0] != '.';
    closedir(dir);
  }
  EXPECT_EQ(m.at("process_open_fds"), listed - 1);

  const double fds = m.at("process_open_fds");
  const int a = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  const int b = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  m = collect(collector);
  ::close(a);
  ::close(b);
  EXPECT_EQ(m.at("process_open_fds"), fds + 2);
}

}  // namespace
}  // namespace mx
