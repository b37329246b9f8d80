// Token lifetime and the call budget with an injected clock.
#include "sources/modal/pacing.h"

#include <gtest/gtest.h>

namespace mx {
namespace {

using namespace std::chrono_literals;

TEST(TokenLifetime, RefreshesAfterHalfToSixtyPercentOfTheLifetime) {
  const auto now = TokenLifetime::Clock::now();
  for (double jitter : {0.0, 0.5, 0.999}) {
    TokenLifetime t;
    t.accept("jwt", now + 1000s, now, jitter);
    const auto at = t.refresh_at() - now;
    EXPECT_GE(at, 500s);
    EXPECT_LE(at, 600s);
    EXPECT_FALSE(t.should_refresh(now + 499s));
    EXPECT_TRUE(t.should_refresh(now + 601s));
    EXPECT_TRUE(t.usable(now + 999s));
    EXPECT_FALSE(t.usable(now + 1000s));
  }
}

TEST(TokenLifetime, AssumesTwentyMinutesWithoutExp) {
  const auto now = TokenLifetime::Clock::now();
  TokenLifetime t;
  t.accept("jwt", std::nullopt, now, 0);
  EXPECT_EQ(t.expiry() - now, std::chrono::duration_cast<TokenLifetime::Clock::duration>(20min));
  EXPECT_EQ(t.refresh_at() - now,
            std::chrono::duration_cast<TokenLifetime::Clock::duration>(10min));
}

TEST(TokenLifetime, FailedRefreshesBackOffWhileTheCachedTokenIsUsable) {
  const auto now = TokenLifetime::Clock::now();
  TokenLifetime t;
  t.accept("jwt", now + 1000s, now, 0);
  auto at = now + 600s;  // past the refresh point
  ASSERT_TRUE(t.should_refresh(at));
  std::vector<std::chrono::milliseconds> waits;
  for (int i = 0; i < 9; ++i) {
    const auto wait = t.next_backoff();
    t.refresh_failed(at);
    EXPECT_FALSE(t.should_refresh(at + wait - 1ms));
    at += wait;
    waits.push_back(wait);
  }
  EXPECT_EQ(waits.front(), 500ms);
  EXPECT_EQ(waits[1], 1000ms);
  EXPECT_EQ(t.next_backoff(), 60s);  // capped
  // Once the token is no longer usable the backoff does not hold back a fetch.
  EXPECT_TRUE(t.should_refresh(now + 1000s));
  EXPECT_EQ(t.token(), "jwt");
  // A success resets the backoff.
  t.accept("jwt2", now + 3000s, now + 1000s, 0);
  EXPECT_EQ(t.next_backoff(), 500ms);
}

TEST(CallBudget, RefreshesOldestFirstAndAtMostOncePerMinAge) {
  CallBudget b(10s);
  const auto t0 = CallBudget::Clock::now();
  b.set_functions({"fu-a", "fu-b", "fu-c"});
  std::vector<std::string> order;
  for (int i = 0; i < 3; ++i) order.push_back(b.next(t0 + i * 1s).id);
  EXPECT_EQ(order, (std::vector<std::string>{"fu-a", "fu-b", "fu-c"}));
  auto idle = b.next(t0 + 5s);
  EXPECT_EQ(idle.kind, CallBudget::Kind::none);
  ASSERT_TRUE(idle.wake);
  EXPECT_EQ(*idle.wake, t0 + 10s);
  EXPECT_EQ(b.next(t0 + 10s).id, "fu-a");
  // A new function is due at once, ahead of older ones.
  b.set_functions({"fu-a", "fu-b", "fu-c", "fu-new"});
  EXPECT_EQ(b.next(t0 + 11s).id, "fu-new");
  EXPECT_EQ(b.next(t0 + 11s).id, "fu-b");
  EXPECT_EQ(b.oldest_age(t0 + 12s), 10s);  // fu-c, refreshed at t0 + 2s
  b.set_functions({"fu-b"});
  EXPECT_EQ(b.functions(), 1u);
}

TEST(CallBudget, TaskInfoAndStatsTakeTurns) {
  CallBudget b(1h);
  const auto t0 = CallBudget::Clock::now();
  b.set_functions({"fu-a", "fu-b"});
  EXPECT_TRUE(b.add_task("ta-1"));
  EXPECT_FALSE(b.add_task("ta-1"));
  b.add_task("ta-2");
  b.add_task("ta-3");
  std::vector<std::string> order;
  for (int i = 0; i < 5; ++i) order.push_back(b.next(t0).id);
  EXPECT_EQ(order, (std::vector<std::string>{"ta-1", "fu-a", "ta-2", "fu-b", "ta-3"}));
  b.add_task("ta-4");
  b.add_task("ta-5");
  b.retain_tasks(IdKeys({"ta-5"}));
  EXPECT_EQ(b.queued_tasks(), 1u);
  EXPECT_EQ(b.next(t0).id, "ta-5");
  EXPECT_EQ(b.next(t0).kind, CallBudget::Kind::none);
}

TEST(IdKeys, HoldsEachIdOnceAndLeavesOutTheEmptyOne) {
  IdKeys keys({"ap-b", "ap-a", "ap-b", ""});
  EXPECT_EQ(keys.size(), 2u);
  EXPECT_TRUE(keys.contains("ap-a"));
  EXPECT_TRUE(keys.contains("ap-b"));
  EXPECT_FALSE(keys.contains("ap-c"));
  EXPECT_FALSE(keys.contains(""));
  keys.add("ap-c");
  keys.add("ap-a");
  keys.add("");
  keys.seal();
  EXPECT_EQ(keys.size(), 3u);
  EXPECT_TRUE(keys.contains("ap-c"));
  EXPECT_TRUE(keys.contains_key(IdKeys::key("ap-c")));
}

// What the rounds ask: did the jobs bring an app the last round did not ask about?
TEST(IdKeys, CoversWhenEveryIdOfTheOtherIsIn) {
  const IdKeys asked({"ap-a", "ap-b", "ap-c"});
  EXPECT_TRUE(asked.covers(IdKeys({"ap-c", "ap-a"})));
  EXPECT_TRUE(asked.covers(IdKeys({"", "ap-b"})));  // a job without an app brings none
  EXPECT_TRUE(asked.covers(IdKeys()));
  EXPECT_FALSE(asked.covers(IdKeys({"ap-a", "ap-new"})));
  EXPECT_FALSE(IdKeys().covers(asked));
}

}  // namespace
}  // namespace mx
