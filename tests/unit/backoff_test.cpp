// Backoff: capped exponential delays with jitter in [delay/2, delay], decorrelated between
// instances, and small enough to keep one per scrape target.
#include "common/backoff.h"

#include <gtest/gtest.h>

#include <vector>

#include "sources/telemetry/scrape_health.h"

namespace mx {
namespace {

using namespace std::chrono_literals;

TEST(Backoff, DelaysDoubleUpToTheMaximumWithJitterInTheUpperHalf) {
  Backoff backoff(100ms, 1s);
  const Duration caps[] = {100ms, 200ms, 400ms, 800ms, 1s, 1s, 1s};
  for (const auto cap : caps) {
    const auto delay = backoff.next();
    EXPECT_GE(delay, cap / 2);
    EXPECT_LE(delay, cap);
  }
  backoff.reset();
  EXPECT_LE(backoff.next(), 100ms);
}

TEST(Backoff, ALongerServerHintWinsUpToTheMaximum) {
  Backoff backoff(100ms, 1s);
  EXPECT_EQ(backoff.next(Duration(700ms)), 700ms);
  EXPECT_EQ(backoff.next(Duration(5s)), 1s);
}

TEST(Backoff, InstancesStartedTogetherDoNotRetryInLockstep) {
  Backoff a(10s, 10min), b(10s, 10min);
  std::vector<Duration> da, db;
  for (int i = 0; i < 8; ++i) {
    da.push_back(a.next());
    db.push_back(b.next());
  }
  EXPECT_NE(da, db);
}

// Every telemetry target keeps a ScrapeHealth (1,000 at 10k jobs, 5,000 at 50k): a Mersenne
// twister in each made a target cost 2.8 KB.
TEST(Backoff, KeepsLittleStateSoThatEveryTargetMayHaveOne) {
  EXPECT_LE(sizeof(Backoff), 64u);
  EXPECT_LE(sizeof(ScrapeHealth), 128u);
}

}  // namespace
}  // namespace mx
