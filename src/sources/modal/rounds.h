// The poll rounds of the Modal source, each poller on its own interval from ModalConfig:
//   apps     AppList(environment)                   -> modal_apps; the liveness poll
//   tasks    ONE TaskList(environment) per round, split by app_id -> modal_tasks for every active
//            job's app (per-app TaskList only when a server refuses the environment-wide form
//            with INVALID_ARGUMENT / FAILED_PRECONDITION, remembered for the process lifetime)
//   billing  WorkspaceBillingReport "d" and "h", ending now, filtered by the jobs' app ids
//   rates    WorkspaceBillingRates (deprecated keys dropped, each logged once)
//   environments       EnvironmentList -> modal_environments (environments.cpp)
//   environment_costs  EnvironmentBillingSummary of each listed environment, this UTC month, every
//                      billing_interval; it runs early when the list brings an environment it has
//                      not asked about. PERMISSION_DENIED / UNIMPLEMENTED are answers (no cost for
//                      that environment, logged once), not failures.
// With sharding the environment rounds run in the exporter that shows them (shard 0) only.
// Right after the Kubernetes sync, and whenever a job brings a new app id, the tasks and billing
// rounds run early, at most once per tasks_interval each; otherwise they wait for their interval.
// The watch also hands the call budget the job functions and the tasks of ended jobs
// (ModalSink::ended_task_ids) for their TaskGetInfo.
//
// A round re-reads the credentials, makes its calls (at most 4 in flight) and succeeds when every
// call did. A failure is read by describe() (failure.h): auth waits the maximum backoff; an
// unreachable server list, rate limiting, a transient error or an unimplemented method back off
// (capped exponential, honouring a server's retry_after_secs) and end the round; NOT_FOUND of one
// task or function is churn. A failed round reports the source failed; a successful apps round
// reports it up.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/backoff.h"
#include "config/config.h"
#include "model/sinks.h"
#include "sources/modal/budget.h"
#include "sources/modal/convert.h"
#include "sources/modal/rpc.h"

namespace mx::modal_client {

class Rounds {
 public:
  // Days of daily billing rows requested (including today), for the model's "total" cost.
  static constexpr int kBillingDailyLookbackDays = 31;

  Rounds(boost::asio::io_context& io, const ModalConfig& config, const BackoffConfig& backoff,
         ModalSink& sink, SourceHealth& health, Rpc& rpc, Budget& budget);

  // Every poller now, and the watch for new jobs.
  void start();
  void stop();

 private:
  enum class Kind { apps, tasks, billing, rates, environments, environment_costs };
  struct Poller {
    Poller(boost::asio::io_context& io, Kind k, const char* n, Duration i, const BackoffConfig& b)
        : kind(k), name(n), interval(i), timer(io), backoff(b.initial, b.max) {}
    Kind kind;
    const char* name;
    Duration interval;
    boost::asio::steady_timer timer;
    // Counts schedule() calls: only the latest wait may start a round (Rounds::schedule).
    std::uint64_t waits = 0;
    Backoff backoff;
    bool running = false;
    bool last_failed = false;
    std::optional<std::chrono::steady_clock::time_point> last_call;  // last round that called
    IdKeys asked;                                                    // ids of that round
    // The job ids' version (ModalSink::job_ids_version) for which `asked` covered every id:
    // until either changes, the watch need not look again.
    std::optional<std::uint64_t> covered_version;
    // The current round.
    std::chrono::steady_clock::time_point started;
    std::deque<std::function<void()>> queue;
    int in_flight = 0;
    bool abort = false;
    std::optional<Failure> failure;
    std::optional<Duration> server_hint;
    Pace pace = Pace::go_on;
    bool started_settled = false;  // it started with the job lists complete
    bool ended_settled = false;    // such a round ended, or there was nothing to ask
  };

  Poller& poller(Kind kind);
  void schedule(Poller& p, Duration delay);
  void run_round(Poller& p);
  // The apps a round of `p` asks about; false (nothing to ask) when there are none.
  bool ask(Poller& p, const std::vector<std::string>& app_ids);
  void queue_calls(Poller& p);
  void pump(Poller& p);
  void call_done(Poller& p, const Rpc::Result& result);
  void note_failure(Poller& p, const Failure& failure);
  void finish_round(Poller& p);

  void schedule_watch(Duration delay);
  void note_settled(Poller& p);
  bool may_run_early(const Poller& p, std::chrono::steady_clock::time_point now) const;
  void maybe_run_early(Poller& p, const IdKeys& ids);
  // Re-reads the sink's id lists when they may have changed; true when they were re-read.
  bool refresh_ids();
  void watch();

  void app_list(Poller& p);
  void task_list(Poller& p, const std::string& app_id, std::vector<std::string> want);
  void billing_rates(Poller& p);
  void billing_report(Poller& p, const std::string& resolution,
                      const std::vector<std::string>& app_ids);
  void report(const modal_convert::Issues& issues, std::string_view method, std::string_view what);
  // environments.cpp
  void queue_environment_calls(Poller& p);
  void environment_list(Poller& p);
  void environment_cost(Poller& p, const std::string& environment_id, std::int64_t month);

  const ModalConfig& config_;
  const BackoffConfig& backoff_config_;
  ModalSink& sink_;
  SourceHealth& health_;
  Rpc& rpc_;
  Budget& budget_;
  std::vector<std::unique_ptr<Poller>> pollers_;
  boost::asio::steady_timer watch_timer_;
  Duration watch_period_{1000};
  bool per_app_tasks_ = false;
  bool first_rounds_reported_ = false;  // ModalSink::modal_first_rounds_ended was called
  // The sink's id lists as of `ids_version_` (re-read only when the version moves).
  std::optional<std::uint64_t> ids_version_;
  bool ids_read_ = false;
  std::optional<std::chrono::steady_clock::time_point> ids_read_at_;  // when last re-read
  IdKeys active_apps_, known_apps_;
  std::uint64_t ended_tasks_version_ = 0;  // of the ended tasks last handed to the budget
  std::set<std::string> deprecated_logged_;
  std::vector<std::string> environment_ids_;  // of the last EnvironmentList answer
  std::set<std::string> refused_logged_;      // environments whose cost was refused, logged
};

}  // namespace mx::modal_client
