// The Modal source: polls Modal's control plane (gRPC, modal.client.ModalClient; docs/modal.md)
// and hands what it finds to the model through ModalSink. It is put together from:
//   rounds.h         the fixed poll rounds (AppList, TaskList, billing report, billing rates,
//                    EnvironmentList and each environment's EnvironmentBillingSummary)
//   budget.h         the per-object calls (TaskGetInfo, FunctionGetCurrentStats) under
//                    max_calls_per_second
//   rpc.h            channels, failover between the servers of server_url, calls on the call
//                    thread, cancellation
//   token_manager.h  credentials, auth metadata and the JWT from AuthTokenGet
//   failure.h        what a failed call means, one reading for rounds and budget
//   convert.h        responses to the model's structs (pure); pacing.h the timing rules
// Every failed call counts modal_api/grpc_<code>, every finished call is counted in the observer
// (modal_exporter_modal_calls_total); never a secret in a log line.
//
// Threading: every gRPC call starts and completes on the source's call thread (call_thread.h),
// whose results are posted to the io_context; the sink and the observer are only called on the
// thread running it.
#pragma once

#include <functional>
#include <memory>
#include <string_view>

#include <boost/asio/io_context.hpp>

#include "config/config.h"
#include "model/sinks.h"

namespace mx {

class ModalSource {
 public:
  // Called once per finished call: method ("AppList") and lower-case code ("ok", "unavailable").
  using CallObserver = std::function<void(std::string_view method, std::string_view code)>;

  // `config` as the config reader accepts it (server_url, max_calls_per_second). Throws
  // ConfigError when client_version / libmodal_version cannot be sent as metadata. `io`,
  // `sink` and `health` must outlive this object.
  ModalSource(boost::asio::io_context& io, ModalConfig config, BackoffConfig backoff,
              ModalSink& sink, SourceHealth& health, CallObserver observer = {});
  ~ModalSource();  // stop()s

  // Every poller starts now. Call once, on the io_context thread or before it runs.
  void start();
  // Cancels timers and in-flight calls and waits until gRPC holds no reference to this source:
  // afterwards the sink is never called again and the object may be destroyed. Call it on the
  // io_context thread (or while the io_context is not running). Idempotent.
  void stop();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mx
