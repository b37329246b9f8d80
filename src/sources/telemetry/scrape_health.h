// The health of one scrape target, shared by the telemetry and upstream sources: a backoff so a
// dead endpoint is retried at a bounded pace, and a state so a failure is logged once when it
// starts (or changes kind) and once when it ends, not on every round.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "common/backoff.h"
#include "config/config.h"

namespace mx {

class ScrapeHealth {
 public:
  using Clock = std::chrono::steady_clock;

  explicit ScrapeHealth(const BackoffConfig& config) : backoff_(config.initial, config.max) {}

  // Whether the target may be scraped at `now` (its backoff after failures has passed).
  bool due(Clock::time_point now) const { return now >= next_attempt_; }
  Clock::time_point next_attempt() const { return next_attempt_; }

  // A failed scrape of kind `error_type`. Returns true when the state changed (log it).
  bool fail(std::string_view error_type, Clock::time_point now) {
    next_attempt_ = now + backoff_.next();
    return set_state(error_type);
  }
  // A scrape whose data was used but which had a problem worth reporting (malformed lines).
  bool degraded(std::string_view problem) {
    backoff_.reset();
    next_attempt_ = {};
    return set_state(problem);
  }
  // A clean scrape. Returns true when it ends a failure (log the recovery).
  bool succeed() { return degraded(""); }

  // "" while healthy (or never scraped), else the kind of the last problem.
  const std::string& state() const { return state_; }

 private:
  bool set_state(std::string_view state) {
    if (state_ == state) return false;
    state_ = state;
    return true;
  }

  Backoff backoff_;
  Clock::time_point next_attempt_{};
  std::string state_;
};

}  // namespace mx
