// The Modal source's call thread: starts run in order on one thread of its own, and completion
// tags come back on that same thread (the property tests/tsan.supp relies on).
#include <grpc/support/time.h>
#include <grpcpp/alarm.h>
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "sources/modal/call_thread.h"

namespace mx {
namespace {

TEST(CallThread, StartsRunInOrderOnOneThreadOfItsOwn) {
  std::mutex mutex;
  std::vector<int> seen[2];
  std::vector<std::thread::id> threads;
  std::promise<void> last[2];
  {
    CallThread calls;
    auto produce = [&](int producer) {
      for (int i = 0; i < 500; ++i) {
        calls.run([&, producer, i](grpc::CompletionQueue&) {
          std::lock_guard lock(mutex);
          seen[producer].push_back(i);
          threads.push_back(std::this_thread::get_id());
          if (i == 499) last[producer].set_value();
        });
      }
    };
    std::thread a(produce, 0), b(produce, 1);
    a.join();
    b.join();
    last[0].get_future().wait();
    last[1].get_future().wait();
  }
  for (const auto& s : seen) {
    ASSERT_EQ(s.size(), 500u);
    for (int i = 0; i < 500; ++i) EXPECT_EQ(s[i], i);
  }
  ASSERT_FALSE(threads.empty());
  for (const auto& id : threads) {
    EXPECT_EQ(id, threads.front());
    EXPECT_NE(id, std::this_thread::get_id());
  }
}

TEST(CallThread, CompletionsComeBackOnTheCallThread) {
  std::promise<std::thread::id> started, completed;
  grpc::Alarm alarm;
  {
    CallThread calls;
    calls.run([&](grpc::CompletionQueue& queue) {
      started.set_value(std::this_thread::get_id());
      alarm.Set(
          &queue,
          gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(20, GPR_TIMESPAN)),
          new CallThread::Completion([&] { completed.set_value(std::this_thread::get_id()); }));
    });
    auto done = completed.get_future();
    ASSERT_EQ(done.wait_for(std::chrono::seconds(10)), std::future_status::ready);
    EXPECT_EQ(started.get_future().get(), done.get());
  }
}

}  // namespace
}  // namespace mx
