#include "metrics/process_metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>

namespace mx {
namespace {

struct ProcStat {
  double utime_ticks = 0;
  double stime_ticks = 0;
  double start_ticks = 0;
  double vsize = 0;
  double rss_pages = 0;
  bool ok = false;
};

ProcStat read_proc_stat() {
  ProcStat s;
  std::ifstream in("/proc/self/stat");
  std::string line;
  if (!std::getline(in, line)) return s;
  // The command name (field 2) may hold spaces; the fields after its closing ')' are fixed.
  const auto close = line.rfind(')');
  if (close == std::string::npos) return s;
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  // Field 3 is the state; utime is field 14, stime 15, starttime 22, vsize 23, rss 24.
  for (int i = 3; i <= 24 && rest >> field; ++i) {
    if (i == 14) s.utime_ticks = std::stod(field);
    if (i == 15) s.stime_ticks = std::stod(field);
    if (i == 22) s.start_ticks = std::stod(field);
    if (i == 23) s.vsize = std::stod(field);
    if (i == 24) {
      s.rss_pages = std::stod(field);
      s.ok = true;
    }
  }
  return s;
}

double boot_time_seconds() {
  std::ifstream in("/proc/stat");
  std::string key;
  double value = 0;
  while (in >> key) {
    if (key == "btime") {
      in >> value;
      return value;
    }
    in.ignore(1 << 20, '\n');
  }
  return 0;
}

prometheus::MetricFamily gauge_family(const char* name, const char* help, double value,
                                      prometheus::MetricType type = prometheus::MetricType::Gauge) {
  prometheus::MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  prometheus::ClientMetric m;
  if (type == prometheus::MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  f.metric.push_back(m);
  return f;
}

}  // namespace

ProcessCollector::ProcessCollector() {
  const auto stat = read_proc_stat();
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double boot = boot_time_seconds();
  if (stat.ok && boot > 0 && ticks > 0) {
    start_time_seconds_ = boot + stat.start_ticks / ticks;
  } else {
    start_time_seconds_ =
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  }
}

std::vector<prometheus::MetricFamily> ProcessCollector::Collect() const {
  std::vector<prometheus::MetricFamily> out;
  const auto stat = read_proc_stat();
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  if (stat.ok) {
    out.push_back(gauge_family(
        "process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
        (stat.utime_ticks + stat.stime_ticks) / ticks, prometheus::MetricType::Counter));
    out.push_back(gauge_family("process_resident_memory_bytes", "Resident memory size in bytes.",
                               stat.rss_pages * page));
    out.push_back(
        gauge_family("process_virtual_memory_bytes", "Virtual memory size in bytes.", stat.vsize));
  }
  int fds = 0;
  if (DIR* dir = opendir("/proc/self/fd")) {
    while (const dirent* e = readdir(dir)) {
      if (e->d_name[0] != '.') ++fds;
    }
    closedir(dir);
    out.push_back(gauge_family("process_open_fds", "Number of open file descriptors.",
                               fds - 1));  // minus the fd of the listing itself
  }
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    out.push_back(gauge_family("process_max_fds", "Maximum number of open file descriptors.",
                               static_cast<double>(limit.rlim_cur)));
  }
  out.push_back(gauge_family("process_start_time_seconds",
                             "Start time of the process since unix epoch in seconds.",
                             start_time_seconds_));
  return out;
}

}  // namespace mx
