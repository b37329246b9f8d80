#include "sources/modal/call_thread.h"

#include <grpc/support/time.h>

namespace mx {
namespace {
// The wake-up tag: an address no Op has.
char wake_tag;
}  // namespace

CallThread::CallThread() : thread_([this] { loop(); }) {}

CallThread::~CallThread() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    if (!wake_) {
      wake_ = std::make_unique<grpc::Alarm>();
      wake_->Set(&queue_, gpr_now(GPR_CLOCK_MONOTONIC), &wake_tag);
    }
  }
  thread_.join();
}

void CallThread::run(std::function<void(grpc::CompletionQueue&)> start) {
  std::lock_guard lock(mutex_);
  if (stopping_) return;
  pending_.push_back(std::move(start));
  if (!wake_) {
    // An alarm that is already due: the queue hands its tag to the call thread at once.
    wake_ = std::make_unique<grpc::Alarm>();
    wake_->Set(&queue_, gpr_now(GPR_CLOCK_MONOTONIC), &wake_tag);
  }
}

void CallThread::loop() {
  void* tag = nullptr;
  bool ok = false;
  while (queue_.Next(&tag, &ok)) {
    if (tag == &wake_tag) {
      std::vector<std::function<void(grpc::CompletionQueue&)>> starts;
      std::unique_ptr<grpc::Alarm> fired;
      bool stop = false;
      {
        std::lock_guard lock(mutex_);
        starts.swap(pending_);
        fired = std::move(wake_);
        stop = stopping_;
      }
      for (auto& start : starts) start(queue_);
      // The queue drains what is still in flight, then Next returns false.
      if (stop) queue_.Shutdown();
      continue;
    }
    auto* op = static_cast<Op*>(tag);
    if (op->proceed(ok)) delete op;
  }
}

}  // namespace mx
