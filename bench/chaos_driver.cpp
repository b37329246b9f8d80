// bench_chaos: the fakes' side of bench/chaos-soak.sh. It serves ModalJobs from the fake
// Kubernetes API server of tests/fakes (HTTPS, LIST/WATCH) and, with --modal, Modal's side of
// each job from the fake Modal server, runs jobs through their lives at a steady rate, keeps the
// truth of what happened to them, and injects the faults on the fakes' side on request.
//
//   bench_chaos --dir DIR --jobs N --churn R [--seed S] [--min-age SEC] [--api-port P] [--modal]
//
// A job's life: created Pending, Running a few seconds later, then Succeeded, Failed or deleted
// while running (cancelled); a finished job is deleted after a while. About N jobs exist at any
// time; R is the ceiling of object changes a second, from which the lifetimes follow (four
// changes a job: lifetime ~ 4N/R). No job is deleted before it is --min-age seconds old and no
// finished job before it was finished for --min-age seconds, and no job at all while a fault on
// the Kubernetes side is in effect or ended less than --min-age seconds ago: overlapping faults
// can blind the exporter for longer than any one of them (a stalled watch given up after 30 s,
// then an API server restart and the client's back-off), and a job created and deleted, or
// finished and deleted, while the exporter could not see has a life no client can count.
// --api-port: where the API server listens (default: a port the system picks); an api-restart binds
// it again, so a port below the system's ephemeral range cannot be taken meanwhile by an outgoing
// connection.
//
// Writes DIR/kubeconfig, prints "ready kubeconfig=PATH url=URL jobs=N [modal=URL]", then reads one
// command per line on stdin and answers each with one line on stdout ("error ..." on failure):
//   truth           "truth created=C completed=C failed=F cancelled=X i6pn=I live=L active=A
//                   changes=K" (i6pn: jobs created with spec.enable_i6pn)
//   hold on|off     stop / resume every object change (the truth stays still while on)
//   churn R         change rate ceiling from now on
//   fault KIND S    start a fault for S seconds: api-restart, watch-410, http-errors,
//                   stall-watch (until the client re-opens its watches, at most 300 s),
//                   split-chunks,
//                   modal-unavailable, modal-exhausted, modal-auth, modal-slow
//   active          "active K1,K2" the faults still in effect ("active -" when none)
//   dump PATH       writes "name phase" of every job, sorted by name, to PATH
//   quit            (so does end of input)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <queue>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench_driver.h"
#include "bench_world.h"
#include "fake_kube_api.h"

namespace {

using Clock = std::chrono::steady_clock;
// The drivers' world and helpers (bench/lib).
using namespace mx::bench;
using mx::testing::FakeKubeApi;

Clock::duration seconds_f(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

// ---- Jobs and their truth --------------------------------------------------------------------

struct Truth {
  std::uint64_t created = 0, completed = 0, failed = 0, cancelled = 0, i6pn = 0, changes = 0;
};

class World {
 public:
  World(FakeKubeApi& kube, ModalWorld* modal, std::size_t jobs, double rate, double min_age,
        std::uint64_t seed)
      : kube_(kube), modal_(modal), target_(jobs), rate_(rate), min_age_(min_age), rng_(seed) {
    // A steady state from the start: the first N jobs at random points of a life.
    std::lock_guard lock(mu_);
    const auto now = Clock::now();
    for (std::size_t i = 0; i < target_; ++i) {
      Job j = make();
      const double into = uniform(0, 1);
      Entry e{j, now};
      if (into < 0.1) {
        e.due = now + seconds_f(uniform(0, pending_s()));
      } else {
        j.phase = "Running";
        j.started_at = j.created_at + 2;
        e.job = j;
        e.due = now + seconds_f(uniform(min_age_, running_s()));
      }
      create_locked(std::move(e));
    }
    if (modal_) modal_->flush(true);
  }

  void set_rate(double r) {
    std::lock_guard lock(mu_);
    rate_ = r;
  }
  void hold(bool on) {
    std::lock_guard lock(mu_);
    held_ = on;
  }
  // True while deletions must wait (see the top of this file); set before the churn starts.
  void set_deletions_wait(std::function<bool()> wait) {
    std::lock_guard lock(mu_);
    deletions_wait_ = std::move(wait);
  }

  // One change: the most overdue step of a job's life, else a new job when fewer than N exist.
  void step() {
    std::lock_guard lock(mu_);
    if (held_) return;
    const auto now = Clock::now();
    if (!due_.empty() && due_.top().first <= now) {
      const auto id = due_.top().second;
      due_.pop();
      advance_locked(id, now);
    } else if (jobs_.size() < target_) {
      Entry e{make(), now + seconds_f(pending_s())};
      create_locked(std::move(e));
    }
    if (modal_) modal_->flush();
  }

  std::string dump() const {
    std::lock_guard lock(mu_);
    std::string out;
    for (const auto& [id, e] : jobs_) out += e.job.name + " " + e.job.phase + "\n";
    return out;
  }

  std::string truth() const {
    std::lock_guard lock(mu_);
    std::size_t active = 0;
    for (const auto& [id, e] : jobs_) {
      if (e.job.phase == "Pending" || e.job.phase == "Running") ++active;
    }
    char out[256];
    std::snprintf(
        out, sizeof out,
        "truth created=%llu completed=%llu failed=%llu cancelled=%llu i6pn=%llu live=%zu "
        "active=%zu changes=%llu",
        static_cast<unsigned long long>(t_.created), static_cast<unsigned long long>(t_.completed),
        static_cast<unsigned long long>(t_.failed), static_cast<unsigned long long>(t_.cancelled),
        static_cast<unsigned long long>(t_.i6pn), jobs_.size(), active,
        static_cast<unsigned long long>(t_.changes));
    return out;
  }

 private:
  struct Entry {
    Job job;
    Clock::time_point due;
  };

  // Lifetimes from the rate: four changes a job, N jobs alive.
  double life_s() const { return rate_ > 0 ? 4.0 * static_cast<double>(target_) / rate_ : 600; }
  double pending_s() { return uniform(1, std::max(2.0, 0.1 * life_s())); }
  double running_s() { return std::max(min_age_, uniform(0.3, 0.9) * life_s()); }
  double finished_s() { return std::max(min_age_, uniform(0.15, 0.45) * life_s()); }

  double uniform(double lo, double hi) {
    return std::uniform_real_distribution<double>(lo, std::max(lo, hi))(rng_);
  }
  std::size_t pick(std::size_t n) {
    return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_);
  }

  Job make() {
    Job j;
    j.id = next_id_++;
    j.namespace_name = "team-" + std::to_string(10 + j.id % 20);
    char name[32];
    std::snprintf(name, sizeof name, "chaos-%07llu", static_cast<unsigned long long>(j.id));
    j.name = name;
    j.gpu = &kGpus[pick(std::size(kGpus))];
    const auto r = pick(10);
    j.replicas = r < 7 ? 1 : (r < 9 ? 2 : 4);
    j.i6pn = j.replicas > 1 && pick(2) == 0;
    const auto size = pick(3);
    j.cpu = size == 0 ? 1 : (size == 1 ? 4 : 16);
    j.memory_gib = size == 0 ? 2 : (size == 1 ? 16 : 64);
    j.phase = "Pending";
    j.created_at = std::time(nullptr);
    return j;
  }

  void create_locked(Entry e) {
    const auto id = e.job.id;
    kube_.upsert(kGroupVersion, kPlural, to_object(e.job));
    if (modal_) modal_->add(e.job);
    ++t_.created;
    if (e.job.i6pn) ++t_.i6pn;
    ++t_.changes;
    due_.push({e.due, id});
    jobs_.emplace(id, std::move(e));
  }

  void advance_locked(std::uint64_t id, Clock::time_point now) {
    auto it = jobs_.find(id);
    if (it == jobs_.end()) return;
    Job& j = it->second.job;
    const auto next = [&](double seconds) { due_.push({now + seconds_f(seconds), id}); };
    if (j.phase == "Pending") {
      j.phase = "Running";
      j.started_at = std::time(nullptr);
      kube_.upsert(kGroupVersion, kPlural, to_object(j));
      next(running_s());
    } else if (deletions_wait_ && deletions_wait_()) {
      next(5);  // a deletion (or a finish, which is followed by one) waits for the exporter
      return;
    } else if (j.phase == "Running") {
      const auto fate = pick(10);
      if (fate < 2) {  // cancelled: deleted while running
        kube_.remove(kGroupVersion, kPlural, j.namespace_name, j.name);
        if (modal_) modal_->remove(j);
        ++t_.cancelled;
        jobs_.erase(it);
      } else {
        j.phase = fate < 8 ? "Succeeded" : "Failed";
        j.finished_at = std::max(j.started_at, std::time(nullptr));
        kube_.upsert(kGroupVersion, kPlural, to_object(j));
        if (modal_) modal_->remove(j);
        ++(fate < 8 ? t_.completed : t_.failed);
        next(finished_s());
      }
    } else {  // finished: the operator's clean-up deletes it
      kube_.remove(kGroupVersion, kPlural, j.namespace_name, j.name);
      jobs_.erase(it);
    }
    ++t_.changes;
  }

  FakeKubeApi& kube_;
  ModalWorld* modal_;
  const std::size_t target_;
  mutable std::mutex mu_;
  double rate_;
  const double min_age_;
  bool held_ = false;
  std::mt19937_64 rng_;
  std::uint64_t next_id_ = 1;
  std::map<std::uint64_t, Entry> jobs_;
  using Due = std::pair<Clock::time_point, std::uint64_t>;
  std::priority_queue<Due, std::vector<Due>, std::greater<>> due_;
  Truth t_;
  std::function<bool()> deletions_wait_;
};

// ---- Faults ----------------------------------------------------------------------------------

// Faults in effect and what ends each: a deadline and/or a condition, then an action.
class Faults {
 public:
  Faults(FakeKubeApi& kube, ModalWorld* modal, std::uint64_t seed)
      : kube_(kube), modal_(modal), rng_(seed ^ 0x5eedfa17ULL), thread_([this] { run(); }) {}
  ~Faults() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    thread_.join();
    for (auto& f : active_) {
      if (f.end) f.end();
    }
  }

  std::string start(const std::string& kind, double seconds) {
    std::lock_guard lock(mu_);
    const auto until = Clock::now() + seconds_f(seconds);
    Active f{kind, until, {}, {}, {}};
    if (kind == "api-restart") {
      kube_.stop();
      f.end = [this] { restart_kube(); };
    } else if (kind == "watch-410") {
      kube_.expire_open_watches();
      // Every watch the client opens meanwhile expires too.
      f.tick = [this] { kube_.expire_open_watches(); };
    } else if (kind == "http-errors") {
      // Throttling and server errors on the jobs' LIST and WATCH requests.
      kube_.inject_failure(429, 3, kPlural, 1);
      kube_.inject_failure(503, 2, kPlural);
      kube_.inject_failure(500, 2, kPlural);
      f.end = [this] { kube_.clear_failures(); };
    } else if (kind == "stall-watch") {
      const std::size_t open = kube_.open_watch_count();
      kube_.stall_open_watches();
      // Over when the client gave up on the silent streams and watches again (or at the
      // deadline, which then is a generous bound).
      f.done = [this, open] { return open > 0 && kube_.open_watch_count() >= open; };
      f.until = Clock::now() + std::max(seconds_f(seconds), seconds_f(300));
    } else if (kind == "split-chunks") {
      kube_.set_watch_chunk_size(std::uniform_int_distribution<std::size_t>(7, 97)(rng_));
      f.end = [this] { kube_.set_watch_chunk_size(0); };
    } else if (kind.starts_with("modal-")) {
#ifdef MX_BENCH_WITH_MODAL
      if (!modal_) return "error " + kind + ": no Modal (--modal)";
      auto& server = modal_->server();
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(seconds_f(seconds));
      if (kind == "modal-unavailable") {
        for (const char* m : kModalMethods) server.fail_for(m, ms, grpc::StatusCode::UNAVAILABLE);
      } else if (kind == "modal-exhausted") {
        for (const char* m : kModalMethods) {
          server.fail_for(m, ms, grpc::StatusCode::RESOURCE_EXHAUSTED, 2.0);
        }
      } else if (kind == "modal-auth") {
        // The token in use is revoked and no new one can be had for a while.
        server.fail_for("AuthTokenGet", ms, grpc::StatusCode::UNAVAILABLE);
        server.rotate_token();
      } else if (kind == "modal-slow") {
        server.set_delay(
            "", std::chrono::milliseconds(std::uniform_int_distribution<int>(1500, 4000)(rng_)));
        f.end = [&server] { server.set_delay("", std::chrono::milliseconds(0)); };
      } else {
        return "error unknown fault: " + kind;
      }
#else
      return "error " + kind + ": built without the Modal source";
#endif
    } else {
      return "error unknown fault: " + kind;
    }
    active_.push_back(std::move(f));
    return "ok";
  }

  // True while a fault on the Kubernetes side is in effect or ended less than `quiet` ago.
  bool kubernetes_disturbed(Clock::duration quiet) const {
    std::lock_guard lock(mu_);
    for (const auto& f : active_) {
      if (on_kubernetes_side(f.kind)) return true;
    }
    return Clock::now() < last_kubernetes_end_ + quiet;
  }

  std::string active() const {
    std::lock_guard lock(mu_);
    std::string out;
    for (const auto& f : active_) out += (out.empty() ? "" : ",") + f.kind;
    return "active " + (out.empty() ? std::string("-") : out);
  }

 private:
  struct Active {
    std::string kind;
    Clock::time_point until;
    std::function<void()> end;   // when it is over
    std::function<void()> tick;  // every 100 ms while it lasts
    std::function<bool()> done;  // over before the deadline when true
  };

  static bool on_kubernetes_side(const std::string& kind) {
    return !kind.starts_with("modal-");
  }

  static constexpr const char* kModalMethods[] = {"AppList",
                                                  "TaskList",
                                                  "TaskGetInfo",
                                                  "FunctionGetCurrentStats",
                                                  "WorkspaceBillingReport",
                                                  "WorkspaceBillingRates"};

  void restart_kube() {
    // The port can be taken meanwhile by someone else; try again rather than give up.
    for (int attempt = 0; attempt < 50; ++attempt) {
      try {
        kube_.start();
        return;
      } catch (const std::exception& e) {
        std::cerr << "bench_chaos: API server restart: " << e.what() << std::endl;
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
    }
  }

  void run() {
    for (;;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      std::lock_guard lock(mu_);
      if (stop_) return;
      const auto now = Clock::now();
      for (auto it = active_.begin(); it != active_.end();) {
        if (now >= it->until || (it->done && it->done())) {
          if (it->end) it->end();
          if (on_kubernetes_side(it->kind)) last_kubernetes_end_ = Clock::now();
          it = active_.erase(it);
        } else {
          if (it->tick) it->tick();
          ++it;
        }
      }
    }
  }

  FakeKubeApi& kube_;
  [[maybe_unused]] ModalWorld* modal_;
  std::mt19937_64 rng_;
  mutable std::mutex mu_;
  std::vector<Active> active_;
  Clock::time_point last_kubernetes_end_{};
  bool stop_ = false;
  std::thread thread_;  // last
};

[[noreturn]] void usage(const std::string& why) {
  std::cerr << "bench_chaos: " << why << "\n"
            << "usage: bench_chaos --dir DIR --jobs N --churn R [--seed S] [--min-age SEC] "
               "[--api-port P] "
               "[--modal]\n";
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  double rate = -1, min_age = 45;
  long api_port = 0;
  const auto args = mx::bench::parse_driver_args(
      argc, argv, 1,
      [&](const std::string& arg, const std::string& value) {
        if (arg == "--churn") {
          rate = std::stod(value);
        } else if (arg == "--min-age") {
          min_age = std::stod(value);
        } else if (arg == "--api-port") {
          api_port = std::stol(value);
        } else {
          usage("unknown argument " + arg);
        }
      },
      usage);
  if (rate < 0) usage("--churn is required");
  const bool with_modal = args.modal;
#ifndef MX_BENCH_WITH_MODAL
  if (with_modal) usage("--modal: built without the Modal source");
#endif
  std::optional<ModalWorld> modal;
  if (with_modal) modal.emplace();

  if (api_port < 0 || api_port > 65535) usage("--api-port must be a port number");
  FakeKubeApi::Options options;
  options.port = static_cast<std::uint16_t>(api_port);
  FakeKubeApi kube(options);
  World world(kube, modal ? &*modal : nullptr, static_cast<std::size_t>(args.jobs), rate, min_age,
              args.seed);
  world.hold(true);  // until the script says the exporter is up
  kube.start();
  const auto kubeconfig = kube.write_kubeconfig(args.dir);
  Faults faults(kube, modal ? &*modal : nullptr, args.seed);
  world.set_deletions_wait(
      [&faults, quiet = seconds_f(min_age)] { return faults.kubernetes_disturbed(quiet); });
  mx::bench::Paced churn([&world] { world.step(); });
  churn.set_rate(rate);
  std::cout << "ready kubeconfig=" << kubeconfig << " url=" << kube.url() << " jobs=" << args.jobs
            << (modal ? " modal=" + modal->address() : std::string()) << std::endl;

  mx::bench::serve_commands([&](const std::string& cmd, std::istringstream& in) -> std::string {
    if (cmd == "truth") return world.truth();
    if (cmd == "hold") {
      std::string on;
      in >> on;
      if (on != "on" && on != "off") throw std::invalid_argument("usage: hold on|off");
      world.hold(on == "on");
      return "ok";
    }
    if (cmd == "churn") {
      double r = -1;
      in >> r;
      if (r < 0) throw std::invalid_argument("churn needs a rate >= 0");
      world.set_rate(r);
      churn.set_rate(r);
      return "ok";
    }
    if (cmd == "fault") {
      std::string kind;
      double seconds = -1;
      in >> kind >> seconds;
      if (kind.empty() || seconds <= 0) throw std::invalid_argument("usage: fault KIND SECONDS");
      return faults.start(kind, seconds);
    }
    if (cmd == "dump") {
      std::string path;
      in >> path;
      if (path.empty()) throw std::invalid_argument("usage: dump PATH");
      std::ofstream out(path);
      out << world.dump();
      if (!out) throw std::runtime_error("cannot write " + path);
      return "ok";
    }
    if (cmd == "active") return faults.active();
    return "error unknown command: " + cmd;
  });
  churn.set_rate(0);
  kube.stop();
  return 0;
}
