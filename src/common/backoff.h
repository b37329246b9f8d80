// Capped exponential backoff with full jitter in [delay/2, delay], shared by every source so that
// a failing API is retried at a bounded, decorrelated pace and each failure is logged once per
// step.
#pragma once

#include <chrono>
#include <optional>
#include <random>

#include "common/duration.h"

namespace mx {

class Backoff {
 public:
  Backoff(Duration initial, Duration max, double factor = 2.0);

  // The delay before the next attempt. A server-provided hint (Retry-After) wins when it is longer.
  Duration next(std::optional<Duration> server_hint = std::nullopt);
  void reset() { attempt_ = 0; }
  int attempt() const { return attempt_; }

 private:
  Duration initial_;
  Duration max_;
  double factor_;
  int attempt_ = 0;
  // A small engine: every telemetry target and upstream endpoint keeps a Backoff (1,000 of them
  // at 10k jobs), and std::mt19937_64's 2.5 KB of state would be most of each one's memory.
  // Jitter needs decorrelation between instances (the seed), not a long period.
  std::minstd_rand rng_;
};

}  // namespace mx
