// The one thread on which the Modal source starts and completes every gRPC call, through a
// completion queue it owns.
//
// Why not gRPC's callback API: its completions run on gRPC's own threads, and grpcpp's inline
// call code (compiled into this program) then runs on two threads whose hand-off happens inside
// libgrpc. With every call started and finished here, our code and grpcpp's inline code run on
// this thread only, and results reach the io_context by boost::asio::post: every hand-off is one
// ThreadSanitizer can see (scripts/test.sh, stage tsan), and gRPC's thread pool never runs ours.
#pragma once

#include <grpcpp/alarm.h>
#include <grpcpp/completion_queue.h>

#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace mx {

class CallThread {
 public:
  // A completion-queue tag: proceed() runs on the call thread for each completed operation it
  // was handed to. Returning true deletes it.
  class Op {
   public:
    virtual ~Op() = default;
    virtual bool proceed(bool ok) = 0;
  };

  // An Op that runs `f` once and is deleted.
  class Completion final : public Op {
   public:
    explicit Completion(std::function<void()> f) : f_(std::move(f)) {}
    bool proceed(bool) override {
      f_();
      return true;
    }

   private:
    std::function<void()> f_;
  };

  CallThread();
  // Joins the thread. Every call started must have completed by then (cancel and wait first).
  ~CallThread();
  CallThread(const CallThread&) = delete;
  CallThread& operator=(const CallThread&) = delete;

  // Runs `start` on the call thread, in the order given; thread-safe. `start` starts calls on the
  // queue it is handed.
  void run(std::function<void(grpc::CompletionQueue&)> start);

 private:
  void loop();

  grpc::CompletionQueue queue_;
  std::mutex mutex_;
  std::vector<std::function<void(grpc::CompletionQueue&)>> pending_;
  std::unique_ptr<grpc::Alarm> wake_;  // set while a wake-up is due
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace mx
