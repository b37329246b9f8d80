// The call budget of the Modal source: the per-object calls, at most modal.max_calls_per_second,
// spread evenly, at most 4 in flight. TaskGetInfo once per task of an ended job whose duration
// waits for Modal's finish time (a task still listed is running and has none; the asked set is
// bounded by the wanted tasks) and FunctionGetCurrentStats per job function, oldest refresh
// first, each at most once per stats_interval; the two take turns (CallBudget, pacing.h). A
// function the budget has not reached yet keeps its last value in the model. A failure that asks
// to slow down (failure.h) pauses the budget with capped exponential backoff and asks that task
// again; NOT_FOUND is churn.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/backoff.h"
#include "config/config.h"
#include "model/sinks.h"
#include "sources/modal/pacing.h"
#include "sources/modal/rpc.h"

namespace mx::modal_client {

class Budget {
 public:
  using Clock = std::chrono::steady_clock;
  // Calls of the budget (and of each poll round) in flight at once: enough to cover hundreds of
  // objects within an interval, few enough not to look like a flood to Modal's rate limiter.
  static constexpr int kMaxConcurrentCalls = 4;

  // `config.max_calls_per_second` is positive (the config reader checks).
  Budget(boost::asio::io_context& io, const ModalConfig& config, const BackoffConfig& backoff,
         ModalSink& sink, SourceHealth& health, Rpc& rpc);

  // The tasks whose TaskGetInfo is wanted (ModalSink::ended_task_ids): each asked once while it
  // is wanted; a task no longer wanted is dropped from the queue and forgotten.
  void want_task_info(const std::vector<std::string>& task_ids);
  // The current job functions.
  void set_functions(const std::vector<std::string>& ids);
  // (Re)arms the timer for the earliest moment a call may go out.
  void kick(std::optional<Clock::time_point> wake = std::nullopt);
  void stop() { timer_.cancel(); }

 private:
  void step();
  void task_info(const std::string& task_id);
  void function_stats(const std::string& function_id);
  void done(const Rpc::Result& result);

  const BackoffConfig& backoff_config_;
  ModalSink& sink_;
  SourceHealth& health_;
  Rpc& rpc_;
  CallBudget budget_;
  // Wanted tasks whose TaskGetInfo is done or queued, by IdKeys::key.
  std::unordered_set<std::uint64_t> asked_tasks_;
  boost::asio::steady_timer timer_;
  Clock::duration period_{};
  Clock::time_point next_allowed_{};
  Clock::time_point paused_until_{};
  Clock::time_point armed_at_{};
  bool armed_ = false;
  std::uint64_t generation_ = 0;
  int in_flight_ = 0;
  Backoff backoff_;
};

}  // namespace mx::modal_client
