// The call budget of the Modal source: the per-object calls, at most modal.max_calls_per_second,
// spread evenly, at most 4 in flight. TaskGetInfo once per task not seen before (the seen set is
// bounded by the listed tasks) and FunctionGetCurrentStats per job function, oldest refresh first,
// each at most once per stats_interval; the two take turns (CallBudget, pacing.h). A function the
// budget has not reached yet keeps its last value in the model. A failure that asks to slow down
// (failure.h) pauses the budget with capped exponential backoff; NOT_FOUND is churn.
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

  // A task listed by a TaskList round: its TaskGetInfo is queued unless done or queued already.
  void task_listed(const std::string& task_id);
  // After a successful tasks round: tasks no longer listed need no TaskGetInfo (`listed` sealed).
  void retain_tasks(const IdKeys& listed);
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
  // Listed tasks whose TaskGetInfo is done or queued, by IdKeys::key: every running task is
  // listed each round, and its id is not kept a second time here.
  std::unordered_set<std::uint64_t> seen_tasks_;
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
