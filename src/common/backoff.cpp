#include "common/backoff.h"

#include <algorithm>
#include <cmath>

namespace mx {

Backoff::Backoff(Duration initial, Duration max, double factor)
    : initial_(initial),
      max_(std::max(max, initial)),
      factor_(factor),
      rng_(std::random_device{}()) {}

Duration Backoff::next(std::optional<Duration> server_hint) {
  const double raw = static_cast<double>(initial_.count()) * std::pow(factor_, attempt_);
  const double capped = std::min(raw, static_cast<double>(max_.count()));
  ++attempt_;
  std::uniform_real_distribution<double> jitter(0.5, 1.0);
  auto delay = Duration{static_cast<Duration::rep>(capped * jitter(rng_))};
  if (server_hint && *server_hint > delay) delay = std::min(*server_hint, max_);
  return delay;
}

}  // namespace mx
