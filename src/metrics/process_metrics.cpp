#include "metrics/process_metrics.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>

namespace mx {
namespace {

// When the process started, in clock ticks after boot: field 22 of /proc/self/stat (read once).
std::optional<double> start_ticks() {
  char buf[1024];
  const int fd = ::open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  const ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return std::nullopt;
  const std::string_view line(buf, static_cast<std::size_t>(n));
  // The command name (field 2) may hold spaces; the fields after its closing ')' are fixed.
  const auto close = line.rfind(')');
  if (close == std::string_view::npos) return std::nullopt;
  const char* p = buf + close + 1;
  const char* end = buf + n;
  for (int i = 3; i <= 22; ++i) {  // field 3 is the state
    while (p < end && *p == ' ') ++p;
    const char* field = p;
    while (p < end && *p != ' ' && *p != '\n') ++p;
    if (field == p) return std::nullopt;  // fewer fields than expected
    double value = 0;
    if (i == 22) {
      if (std::from_chars(field, p, value).ec != std::errc()) return std::nullopt;
      return value;
    }
  }
  return std::nullopt;
}

// The per-scrape figures come from getrusage() and /proc/self/statm: /proc/self/stat makes the
// kernel walk every thread for its times and format fifty fields, and it is read once, at start.
struct Statm {
  double size_pages = 0;
  double resident_pages = 0;
  bool ok = false;
};

Statm read_statm(int fd) {
  Statm s;
  char buf[256];
  if (fd < 0) return s;
  const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return s;
  const char* end = buf + n;
  const auto first = std::from_chars(buf, end, s.size_pages);
  if (first.ec != std::errc() || first.ptr == end || *first.ptr != ' ') return s;
  s.ok = std::from_chars(first.ptr + 1, end, s.resident_pages).ec == std::errc();
  return s;
}

// Linux 6.2 and later give the number of open descriptors as the size of /proc/self/fd: one
// fstat. Before, the directory is listed, which makes the kernel build an entry for each
// descriptor; with a kept connection per telemetry endpoint that is a thousand per scrape.
std::size_t count_open_fds(DIR* dir) {
  struct stat st {};
  if (::fstat(dirfd(dir), &st) == 0 && st.st_size > 0) return static_cast<std::size_t>(st.st_size);
  rewinddir(dir);
  std::size_t fds = 0;
  while (const dirent* e = readdir(dir)) {
    if (e->d_name[0] != '.') ++fds;
  }
  return fds;
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

ProcessCollector::~ProcessCollector() {
  if (fd_dir_) closedir(fd_dir_);
  if (statm_fd_ >= 0) ::close(statm_fd_);
}

ProcessCollector::ProcessCollector()
    : statm_fd_(::open("/proc/self/statm", O_RDONLY | O_CLOEXEC)),
      fd_dir_(opendir("/proc/self/fd")) {
  const auto started = start_ticks();
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double boot = boot_time_seconds();
  if (started && boot > 0 && ticks > 0) {
    start_time_seconds_ = boot + *started / ticks;
  } else {
    start_time_seconds_ =
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  }
}

std::vector<prometheus::MetricFamily> ProcessCollector::Collect() const {
  std::vector<prometheus::MetricFamily> out;
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) == 0) {
    auto seconds = [](const timeval& t) {
      return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
    };
    out.push_back(gauge_family(
        "process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
        seconds(usage.ru_utime) + seconds(usage.ru_stime), prometheus::MetricType::Counter));
  }
  std::lock_guard lock(mu_);
  const auto statm = read_statm(statm_fd_);
  if (statm.ok) {
    const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
    out.push_back(gauge_family("process_resident_memory_bytes", "Resident memory size in bytes.",
                               statm.resident_pages * page));
    out.push_back(gauge_family("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                               statm.size_pages * page));
  }
  if (fd_dir_) {
    // This collector's own two are counted: they stay open for the life of the process.
    out.push_back(gauge_family("process_open_fds", "Number of open file descriptors.",
                               static_cast<double>(count_open_fds(fd_dir_))));
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
