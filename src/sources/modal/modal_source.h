// The Modal source: polls Modal's control plane (gRPC, modal.client.ModalClient; docs/modal.md)
// and hands what it finds to the model through ModalSink. Responses are turned into the model's
// structs by the pure functions of convert.h; timing rules live in pacing.h.
//
// Fixed calls, each poller on its own interval from ModalConfig:
//   apps     AppList(environment)                   -> modal_apps; the liveness poll
//   tasks    ONE TaskList(environment) per round, split by app_id -> modal_tasks for every active
//            job's app (per-app TaskList only when a server refuses the environment-wide form
//            with INVALID_ARGUMENT / FAILED_PRECONDITION, remembered for the process lifetime)
//   billing  WorkspaceBillingReport "d" and "h", ending now, filtered by the jobs' app ids
//   rates    WorkspaceBillingRates (deprecated keys dropped, each logged once)
// Right after the Kubernetes sync, and whenever a job brings a new app id, the tasks and billing
// rounds run early, at most once per tasks_interval each; otherwise they wait for their interval.
//
// Budgeted calls, at most modal.max_calls_per_second, spread evenly, at most 4 in flight:
//   TaskGetInfo once per task not seen before (the seen set is bounded by the listed tasks), and
//   FunctionGetCurrentStats per job function, oldest refresh first, each at most once per
//   stats_interval; the two take turns. A function the budget has not reached yet keeps its last
//   value in the model.
//
// Auth: x-modal-token-id / -secret (re-read each round), x-modal-client-type / -version,
// x-modal-libmodal-version, and x-modal-auth-token from AuthTokenGet, refreshed after 50-60 % of
// its lifetime (20 min assumed without exp). While a refresh fails the cached token stays in use
// (retries 0.5 s .. 60 s apart); UNAUTHENTICATED / PERMISSION_DENIED from AuthTokenGet is a
// credentials error. A call refused with UNAUTHENTICATED while carrying a JWT drops it and is
// retried once. No call is made without credentials.
//
// Servers: server_url may list several (comma-separated); the first is used until a call ends in
// UNAVAILABLE, then the next (logged).
//
// Errors: each failed call counts modal_api/grpc_<code> and every call counts in the observer
// (modal_exporter_modal_calls_total). RESOURCE_EXHAUSTED, UNAVAILABLE and DEADLINE_EXCEEDED slow
// the poller (or the budget) down with capped exponential backoff, honouring a server's
// RPCRetryPolicy.retry_after_secs; auth errors wait the maximum backoff. NOT_FOUND of one
// task/function is churn. Never a secret in a log line.
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
  // Days of daily billing rows requested (including today), for the model's "total" cost.
  static constexpr int kBillingDailyLookbackDays = 31;

  // Called once per finished call: method ("AppList") and lower-case code ("ok", "unavailable").
  using CallObserver = std::function<void(std::string_view method, std::string_view code)>;

  // Throws ConfigError when config.server_url cannot be used (see parse_modal_server_urls).
  // `io`, `sink` and `health` must outlive this object.
  ModalSource(boost::asio::io_context& io, ModalConfig config, BackoffConfig backoff,
              ModalSink& sink, SourceHealth& health, CallObserver observer = {});
  ~ModalSource();  // stop()s

  ModalSource(const ModalSource&) = delete;
  ModalSource& operator=(const ModalSource&) = delete;

  // Starts every poller now. Call once, on the io_context thread or before it runs.
  void start();
  // Cancels timers and in-flight calls and waits until gRPC holds no reference to this source.
  // After it returns the sink is never called again and the object may be destroyed. Call it on
  // the io_context thread (or while the io_context is not running). Idempotent.
  void stop();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mx
