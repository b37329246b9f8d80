// bench_kube_load: the Kubernetes side of bench/real-binary.sh. It serves N running ModalJobs
// from the fake API server of tests/fakes (HTTPS, LIST/WATCH), changes them on request, and
// measures from the outside what the real exporter makes of it: when the first /metrics holds
// every job, and how long a single change takes to show up in /metrics.
//
//   bench_kube_load --dir DIR --jobs N [--seed S] [--probes P] [--modal] [--telemetry-every K]
//
// With --modal it also serves Modal's side of every job from the fake Modal server of
// tests/fakes (plaintext gRPC on loopback): an app with one running task (and its TaskGetInfo),
// a function with a backlog, billing rows ("d": today; "h": the last two hours) and the rates,
// kept in step with the churn's deletions and creations; the answers never change otherwise.
// With --telemetry-every K, one job in K (not the probes) announces a telemetry endpoint, served
// by bench/lib/telemetry_server.h: a DCGM page for its GPUs and growing network counters.
//
// Writes DIR/kubeconfig, prints "ready kubeconfig=PATH url=URL jobs=N [modal=URL]", then reads one
// command per line on stdin and answers each with one line on stdout (an answer that starts with
// "error" is a failure):
//   churn R                       R object changes per second from now on (0 stops)
//   sync PID HOST:PORT TIMEOUT_S  wait until /metrics lists every job; the exporter's CPU ticks
//                                 and RSS at that moment
//   latency HOST:PORT COUNT       COUNT isolated changes, each timed until /metrics shows it
//   stats                         changes made so far, telemetry pages served
//   quit                          (so does end of input)
//
// Measuring inside the process that makes the change leaves no clock or pipe between the change
// and the start of the stopwatch.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <iostream>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "bench_driver.h"
#include "bench_world.h"
#include "common/open_files.h"
#include "fake_kube_api.h"
#include "metrics_client.h"
#include "telemetry_server.h"

namespace {

using Clock = std::chrono::steady_clock;
// The drivers' world and helpers (bench/lib).
using namespace mx::bench;

class Jobs {
 public:
  // `modal` and `telemetry`, when given, follow every job created and deleted; one job in
  // `telemetry_every` has a telemetry endpoint.
  Jobs(mx::testing::FakeKubeApi& kube, int count, int probes, std::uint64_t seed, ModalWorld* modal,
       TelemetryServer* telemetry, int telemetry_every)
      : kube_(kube),
        rng_(seed),
        probes_(probes),
        modal_(modal),
        telemetry_(telemetry),
        telemetry_every_(telemetry_every) {
    slots_.reserve(static_cast<std::size_t>(count));
    for (int i = 0; i < count; ++i) slots_.push_back(make(i < probes));
    for (const auto& j : slots_) {
      kube_.upsert(kGroupVersion, kPlural, to_object(j));
      if (modal_) modal_->add(j);
    }
    if (modal_) modal_->flush(true);
  }

  // One object change of the churn, in turn: an edit of a running job (replicas, the change a
  // user makes most), the deletion of a job and the creation of a new one in its place (a
  // finished job going away while another starts), so the number of jobs stays about N. Probe
  // jobs are left alone so that a latency measurement sees only its own change.
  void churn_one() {
    std::lock_guard lock(mu_);
    const auto span = slots_.size() - static_cast<std::size_t>(probes_);
    if (span == 0) return;
    if (pending_create_) {
      kube_.upsert(kGroupVersion, kPlural, to_object(slots_[*pending_create_]));
      if (modal_) modal_->add(slots_[*pending_create_]);
      pending_create_.reset();
    } else {
      const auto index = static_cast<std::size_t>(probes_) + pick(span);
      auto& j = slots_[index];
      if (delete_next_) {
        kube_.remove(kGroupVersion, kPlural, j.namespace_name, j.name);
        if (modal_) modal_->remove(j);
        if (!j.telemetry_url.empty()) telemetry_->remove(uid_of(j));
        j = make(false);
        pending_create_ = index;
      } else {
        j.replicas = j.replicas == 1 ? 2 : 1;
        kube_.upsert(kGroupVersion, kPlural, to_object(j));
      }
      delete_next_ = !delete_next_;
    }
    if (modal_) modal_->flush();
    ++changes_;
  }

  // Flips a probe job's replicas between 1 and 3; returns what /metrics must show afterwards.
  struct Probe {
    std::string name;
    int replicas;
  };
  Probe change_probe(int index) {
    std::lock_guard lock(mu_);
    auto& j = slots_[static_cast<std::size_t>(index % probes_)];
    j.replicas = j.replicas == 1 ? 3 : 1;
    kube_.upsert(kGroupVersion, kPlural, to_object(j));
    ++changes_;
    return {j.name, j.replicas};
  }

  std::uint64_t changes() const {
    std::lock_guard lock(mu_);
    return changes_;
  }

 private:
  std::size_t pick(std::size_t n) {
    return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_);
  }

  Job make(bool probe) {
    Job j;
    j.id = next_id_++;
    // Twenty teams' namespaces; names unique across them so a probe's name finds its lines.
    j.namespace_name = probe ? "team-00" : "team-" + std::to_string(10 + j.id % 20);
    char name[32];
    std::snprintf(name, sizeof name, probe ? "probe-%llu" : "train-%07llu",
                  static_cast<unsigned long long>(j.id));
    j.name = name;
    j.gpu = probe ? &kGpus[1] : &kGpus[pick(std::size(kGpus))];
    const auto r = pick(10);
    j.replicas = probe || r < 7 ? 1 : (r < 9 ? 2 : 4);
    j.i6pn = j.replicas > 1 && pick(2) == 0;
    const auto size = pick(3);
    j.cpu = size == 0 ? 1 : (size == 1 ? 4 : 16);
    j.memory_gib = size == 0 ? 2 : (size == 1 ? 16 : 64);
    const std::time_t now = std::time(nullptr);
    j.created_at = now - static_cast<std::time_t>(pick(6 * 3600)) - 120;
    j.started_at = j.created_at + static_cast<std::time_t>(pick(120));
    if (telemetry_ && !probe && j.id % static_cast<std::uint64_t>(telemetry_every_) == 0) {
      const std::string uid = uid_of(j);
      j.telemetry_url = telemetry_->add(uid, j.gpu->type, gpu_count(j), j.started_at);
    }
    return j;
  }

  mx::testing::FakeKubeApi& kube_;
  mutable std::mutex mu_;
  std::mt19937_64 rng_;
  std::vector<Job> slots_;
  int probes_;
  ModalWorld* modal_;
  TelemetryServer* telemetry_;
  int telemetry_every_;
  std::uint64_t next_id_ = 0;
  std::uint64_t changes_ = 0;
  bool delete_next_ = false;
  std::optional<std::size_t> pending_create_;  // slot whose new job is created next turn
};

// ---- Commands ---------------------------------------------------------------------------------

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

// Waits for /readyz, then for modal_jobs_active to add up to `jobs` (every bench job runs): both
// are read without the per-job lines, so polling does not add the cost of serving the whole
// body to the start-up being measured. One full read then confirms that /metrics lists every job.
std::string command_sync(int pid, const std::string& target, std::size_t jobs, double timeout_s) {
  mx::bench::MetricsClient client(target);
  const auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
  std::string body;
  std::size_t polls = 0, listed = 0;
  while (Clock::now() < deadline) {
    if (client.get("/readyz", body) == 200) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  while (Clock::now() < deadline) {
    ++polls;
    const auto active = client.family_sum("modal_jobs_active");
    if (active && *active >= static_cast<double>(jobs)) {
      const auto s = sample_process(pid);
      timespec now{};
      clock_gettime(CLOCK_REALTIME, &now);
      if (client.get("/metrics", body) == 200) {
        listed = mx::bench::count_lines_starting(body, "modal_job_info{");
        if (listed >= jobs) {
          char out[256];
          std::snprintf(out, sizeof out,
                        "sync seen_unix=%lld.%09ld cpu_ticks=%lld rss_kb=%lld hwm_kb=%lld "
                        "polls=%zu body_bytes=%zu",
                        static_cast<long long>(now.tv_sec), now.tv_nsec, s.cpu_ticks, s.rss_kb,
                        s.hwm_kb, polls, body.size());
          return out;
        }
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return "error sync: /metrics listed " + std::to_string(listed) + " of " + std::to_string(jobs) +
         " jobs after " + std::to_string(timeout_s) + " s";
}

double median(std::vector<double> v) {
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  const auto n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Each change is timed until /metrics shows it, as plain text and as gzip (what Prometheus
// asks for): they differ when the exporter compresses after it publishes. Polls alternate
// between the two, each read only up to the probe's line, with a short pause so that polling
// does not take the CPU the exporter needs to publish.
std::string command_latency(Jobs& jobs, const std::string& target, int count) {
  mx::bench::MetricsClient client(target);
  std::mt19937 rng(17);
  std::vector<double> plain_ms, gzip_ms, poll_ms;
  int failed = 0;
  for (int i = 0; i < count; ++i) {
    // Spaced at random so that changes do not line up with the exporter's own timers, and far
    // enough apart that each is an isolated change.
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::uniform_int_distribution<int>(300, 700)(rng)));
    const auto probe = jobs.change_probe(i);
    const auto changed = Clock::now();
    std::optional<double> plain, gzip;
    for (bool use_gzip = false; (!plain || !gzip) && ms_since(changed) < 10000;
         use_gzip = !use_gzip) {
      auto& seen = use_gzip ? gzip : plain;
      if (seen) continue;
      const auto poll_start = Clock::now();
      const auto value = client.job_value("modal_job_replicas", probe.name, use_gzip);
      if (value && *value == probe.replicas) {
        seen = ms_since(changed);
      } else if (!value) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));  // not reachable: no spin
        continue;
      }
      poll_ms.push_back(ms_since(poll_start));
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
    if (plain && gzip) {
      plain_ms.push_back(*plain);
      gzip_ms.push_back(*gzip);
    } else {
      ++failed;
    }
  }
  if (plain_ms.empty()) return "error latency: no change became visible within 10 s";
  std::ostringstream out;
  out.precision(1);
  out << std::fixed << "latency median_ms=" << median(plain_ms)
      << " max_ms=" << *std::max_element(plain_ms.begin(), plain_ms.end())
      << " gzip_median_ms=" << median(gzip_ms)
      << " gzip_max_ms=" << *std::max_element(gzip_ms.begin(), gzip_ms.end())
      << " poll_median_ms=" << median(poll_ms) << " changes=" << plain_ms.size()
      << " failed=" << failed << " samples=";
  for (std::size_t i = 0; i < plain_ms.size(); ++i) out << (i ? "," : "") << plain_ms[i];
  out << " gzip_samples=";
  for (std::size_t i = 0; i < gzip_ms.size(); ++i) out << (i ? "," : "") << gzip_ms[i];
  return out.str();
}

[[noreturn]] void usage(const std::string& why) {
  std::cerr << "bench_kube_load: " << why << "\n"
            << "usage: bench_kube_load --dir DIR --jobs N [--seed S] [--probes P] [--modal]"
               " [--telemetry-every K]\n";
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  long probes = 4;
  long telemetry_every = 0;
  const auto args = mx::bench::parse_driver_args(
      argc, argv, 11,
      [&](const std::string& arg, const std::string& value) {
        if (arg == "--probes") {
          probes = std::stol(value);
        } else if (arg == "--telemetry-every") {
          telemetry_every = std::stol(value);
        } else {
          usage("unknown argument " + arg);
        }
      },
      usage);
  const long jobs_count = args.jobs;
  const bool with_modal = args.modal;
  if (probes < 1 || probes > jobs_count) usage("--probes must be in [1, jobs]");
  if (telemetry_every < 0) usage("--telemetry-every must be >= 0 (0: no telemetry)");

#ifndef MX_BENCH_WITH_MODAL
  if (with_modal) usage("--modal: built without the Modal source");
#endif
  std::optional<ModalWorld> modal;
  if (with_modal) modal.emplace();

  std::optional<TelemetryServer> telemetry;
  if (telemetry_every > 0) {
    // A listener and a connection per endpoint: 10,000 descriptors at 50k jobs.
    mx::open_file_limit();
    telemetry.emplace();
  }

  mx::testing::FakeKubeApi kube;
  const auto load_start = Clock::now();
  Jobs jobs(kube, static_cast<int>(jobs_count), static_cast<int>(probes), args.seed,
            modal ? &*modal : nullptr, telemetry ? &*telemetry : nullptr,
            static_cast<int>(telemetry_every));
  const double load_ms = ms_since(load_start);
  kube.start();
  const auto kubeconfig = kube.write_kubeconfig(args.dir);
  mx::bench::Paced churn([&jobs] { jobs.churn_one(); });
  std::cout << "ready kubeconfig=" << kubeconfig << " url=" << kube.url() << " jobs=" << jobs_count
            << " load_ms=" << static_cast<long>(load_ms)
            << (modal ? " modal=" + modal->address() : std::string()) << std::endl;

  mx::bench::serve_commands([&](const std::string& cmd, std::istringstream& in) -> std::string {
    if (cmd == "churn") {
      double rate = -1;
      in >> rate;
      if (rate < 0) throw std::invalid_argument("churn needs a rate >= 0");
      churn.set_rate(rate);
      return "ok";
    }
    if (cmd == "sync") {
      int pid = 0;
      std::string target;
      double timeout = 0;
      in >> pid >> target >> timeout;
      if (pid <= 0 || target.empty() || timeout <= 0)
        throw std::invalid_argument("usage: sync PID HOST:PORT TIMEOUT_S");
      return command_sync(pid, target, static_cast<std::size_t>(jobs_count), timeout);
    }
    if (cmd == "latency") {
      std::string target;
      int count = 0;
      in >> target >> count;
      if (target.empty() || count <= 0)
        throw std::invalid_argument("usage: latency HOST:PORT COUNT");
      return command_latency(jobs, target, count);
    }
    if (cmd == "stats") {
      return "stats changes=" + std::to_string(jobs.changes()) +
             " telemetry_requests=" + std::to_string(telemetry ? telemetry->requests() : 0);
    }
    return "error unknown command: " + cmd;
  });
  churn.set_rate(0);
  kube.stop();
  return 0;
}
