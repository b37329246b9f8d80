// The Modal source's calls: channels to the servers of server_url, failover between them, unary
// and server-streaming calls on the call thread (call_thread.h), auth through the TokenManager
// (with the one retry after UNAUTHENTICATED), cancellation, and the per-call bookkeeping (each
// finished call counted per method and code for the observer, each failed one under its error
// type, and read once by describe() in failure.h).
//
// Failover: a call whose server cannot be reached (UNAVAILABLE or DEADLINE_EXCEEDED while the
// channel has no connection: TRANSIENT_FAILURE or CONNECTING, or "failed to connect") moves the
// source to the next server in the list (logged) and is made again there, until every server has
// been tried; only then does it fail. An error a reachable server answers, for any method, is
// that method's and never moves the source. The server that answered stays in use.
//
// Threading: every gRPC call starts and completes on the call thread; its result is posted to
// the io_context, where `done` runs unless the source was stopped. Everything else runs on the
// io_context thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <boost/asio/io_context.hpp>

#include "config/config.h"
#include "modal_api.grpc.pb.h"
#include "model/sinks.h"
#include "sources/modal/call_thread.h"
#include "sources/modal/convert.h"
#include "sources/modal/failure.h"
#include "sources/modal/token_manager.h"

namespace mx::modal_client {

namespace pb = ::modal::client;
using Stub = pb::ModalClient::Stub;

// Called once per finished call: method ("AppList") and lower-case code ("ok", "unavailable").
using CallObserver = std::function<void(std::string_view method, std::string_view code)>;

// What a gRPC thread may touch. stop() flips `stopped`, cancels what is in flight and waits until
// every completion has been posted; posted handlers and timers check `stopped` first, so they
// never reach into a stopped (possibly destroyed) source.
struct Lifetime {
  std::atomic<bool> stopped{false};
  std::mutex mutex;
  std::condition_variable idle;
  std::uint64_t next_id = 0;
  std::map<std::uint64_t, std::function<void()>> cancellers;

  std::uint64_t begin(std::function<void()> cancel);
  void end(std::uint64_t id);
};

// One attempt of a call against one server. A ClientContext serves once, so every attempt (after
// a failover or a refused JWT) is a new one.
class Attempt {
 public:
  virtual ~Attempt() = default;
  // On the call thread: starts the call on `queue`; `completed` runs there once it is over.
  virtual void start(Stub& stub, grpc::CompletionQueue& queue, std::function<void()> completed) = 0;

  grpc::ClientContext context;
  grpc::Status status;
};

template <typename Req, typename Resp>
using Prepare = std::unique_ptr<grpc::ClientAsyncResponseReader<Resp>> (Stub::*)(
    grpc::ClientContext*, const Req&, grpc::CompletionQueue*);

template <typename Req, typename Resp>
class UnaryAttempt final : public Attempt {
 public:
  UnaryAttempt(std::shared_ptr<const Req> request, Prepare<Req, Resp> prepare)
      : request_(std::move(request)), prepare_(prepare) {}
  void start(Stub& stub, grpc::CompletionQueue& queue, std::function<void()> completed) override {
    reader_ = (stub.*prepare_)(&context, *request_, &queue);
    reader_->StartCall();
    reader_->Finish(&response, &status, new CallThread::Completion(std::move(completed)));
  }
  Resp response;

 private:
  std::shared_ptr<const Req> request_;  // one for every attempt of the call
  Prepare<Req, Resp> prepare_;
  std::unique_ptr<grpc::ClientAsyncResponseReader<Resp>> reader_;
};

// WorkspaceBillingReport, read to its end (or cut off after kMaxItems, `overflow`).
class BillingAttempt final : public Attempt, private CallThread::Op {
 public:
  // A longer stream is cut off: a bounded memory cost whatever the server sends.
  static constexpr std::size_t kMaxItems = 200000;

  explicit BillingAttempt(std::shared_ptr<const pb::WorkspaceBillingReportRequest> request)
      : request_(std::move(request)) {}
  void start(Stub& stub, grpc::CompletionQueue& queue, std::function<void()> completed) override;

  // The items decoded as they arrive (modal_convert::add_billing_item): the stream's messages
  // are not kept, so a report of N items costs N compact rows, not N messages and then rows.
  BillingReport report;
  modal_convert::Issues issues;
  std::size_t items = 0;
  bool overflow = false;

 private:
  bool proceed(bool ok) override;

  std::shared_ptr<const pb::WorkspaceBillingReportRequest> request_;
  std::unique_ptr<grpc::ClientAsyncReader<pb::WorkspaceBillingReportItem>> stream_;
  pb::WorkspaceBillingReportItem item_;
  std::function<void()> completed_;
  bool reading_ = false;
  bool finishing_ = false;
};

class Rpc {
 public:
  // How one call ended: nullopt when it succeeded.
  using Result = std::optional<Failure>;

  // `config.server_url` must be a valid list (parse_modal_server_urls); the config reader checks.
  Rpc(boost::asio::io_context& io, const ModalConfig& config, ModalSink& sink,
      CallObserver observer);
  ~Rpc();  // stop()s

  TokenManager& tokens() { return tokens_; }
  const std::shared_ptr<Lifetime>& lifetime() const { return lifetime_; }
  const std::string& server() const { return endpoints_[active_].url; }
  std::size_t servers() const { return endpoints_.size(); }

  // One unary call; `done(response, result)` runs on the io_context thread. `may_refuse`: a call
  // some tokens are not allowed to make (refused(), below): such a refusal is an answer for the
  // caller to read, not an error of the source, and is neither counted nor logged here.
  template <typename Req, typename Resp, typename Done>
  void unary(const char* method, Req request, Prepare<Req, Resp> prepare, Done done,
             bool may_refuse = false) {
    auto owned = std::make_shared<const Req>(std::move(request));
    call(
        method, true,
        [owned, prepare] { return std::make_shared<UnaryAttempt<Req, Resp>>(owned, prepare); },
        [done = std::move(done)](Attempt& a, const Result& result) mutable {
          done(static_cast<UnaryAttempt<Req, Resp>&>(a).response, result);
        },
        may_refuse);
  }

  // PERMISSION_DENIED or UNIMPLEMENTED from the server: it will not answer this call for this
  // token (a call that never went out, for want of an auth token, is not refused).
  static bool refused(const Result& result) {
    return result && !result->before_call &&
           (result->code == grpc::StatusCode::PERMISSION_DENIED ||
            result->code == grpc::StatusCode::UNIMPLEMENTED);
  }

  // One WorkspaceBillingReport stream; `done(attempt, result)` runs on the io_context thread.
  void billing_report(pb::WorkspaceBillingReportRequest request,
                      std::function<void(BillingAttempt&, const Result&)> done);

  // Flips the lifetime to stopped, drops the calls waiting for a token, cancels the calls in
  // flight and waits until gRPC holds no reference to them. False when already stopped.
  bool stop();

 private:
  struct Endpoint {
    std::string url;
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<Stub> stub;
  };
  struct Call;

  void call(const char* method, bool with_auth, std::function<std::shared_ptr<Attempt>()> make,
            std::function<void(Attempt&, const Result&)> done, bool may_refuse = false);
  void begin(const std::shared_ptr<Call>& call);
  void launch(const std::shared_ptr<Call>& call);
  void attempt_done(const std::shared_ptr<Call>& call, Attempt& attempt, std::size_t endpoint);
  void finish(const std::shared_ptr<Call>& call, Attempt& attempt, Result result);
  // Whether a failed call had a connection to its server (else: unreachable, fail over).
  bool reached(std::size_t endpoint, const grpc::Status& status) const;
  void fail_over(std::size_t from);

  boost::asio::io_context& io_;
  const ModalConfig& config_;
  ModalSink& sink_;
  CallObserver observer_;
  std::shared_ptr<Lifetime> lifetime_ = std::make_shared<Lifetime>();
  TokenManager tokens_;
  std::vector<Endpoint> endpoints_;
  CallThread calls_;  // after endpoints_: gone before the stubs and channels are
  std::size_t active_ = 0;
  std::set<std::string> unimplemented_logged_;
};

}  // namespace mx::modal_client
