// The Modal source: polls Modal's control plane (gRPC, modal.client.ModalClient, see
// MODAL_API.md) and hands what it finds to the model through ModalSink.
//
// Five pollers, each on its own interval from ModalConfig:
//   apps     AppList(environment)                       -> modal_apps; the liveness poll
//                                                          (source_succeeded("modal", secs))
//   tasks    TaskList per sink.active_job_app_ids()     -> modal_tasks, then TaskGetInfo for each
//            task the sink does not know yet            -> modal_task_info
//   stats    FunctionGetCurrentStats per job function   -> modal_function_stats
//   billing  WorkspaceBillingReport, two streams, filtered by sink.known_job_app_ids() (skipped
//            when empty), each published only when it completed OK -> modal_billing:
//              "d": UTC days, from midnight kBillingDailyLookbackDays-1 days ago to the next
//                   midnight (today's row appears when Modal reports partial days)
//              "h": hours, from the start of the hour 24 h ago to the end of the current hour
//            An item whose cost is not a plain non-negative decimal, or that lacks an app id or
//            interval, is skipped and counted as error_type="parse"; the rest of the report is
//            still published (one bad row must not hide every job's cost).
//   rates    WorkspaceBillingRates                      -> modal_rates (keys lower-cased; a
//            malformed value is skipped and counted as "parse")
//
// Threading: every gRPC call runs on gRPC's callback threads; its result is posted to the
// io_context given here, and the sink is only ever called on the thread running that io_context.
//
// Auth: x-modal-token-id / -secret (files from config, else env MODAL_TOKEN_ID /
// MODAL_TOKEN_SECRET, re-read each poll so a rotated Secret is picked up), x-modal-client-type,
// x-modal-client-version on every call, plus x-modal-auth-token: a JWT from AuthTokenGet, cached
// until 60 s before its exp claim (5 min without one). A call refused with UNAUTHENTICATED while
// carrying a JWT drops it and is retried once with a fresh one (that first refusal is normal
// token expiry and is not counted). A server without AuthTokenGet (UNIMPLEMENTED) is used without
// a JWT. Missing credentials count error_type="auth", mark the source failed and are retried
// with backoff; no call is made without them.
//
// Errors: each failed call counts modal_api/grpc_<code>. UNAVAILABLE, DEADLINE_EXCEEDED,
// RESOURCE_EXHAUSTED (and UNIMPLEMENTED, logged once per method) are retried with capped
// exponential backoff + jitter; UNAUTHENTICATED / PERMISSION_DENIED wait the maximum backoff; any
// other code waits the regular interval. NOT_FOUND on one task/function/app is ordinary churn:
// counted, but the rest of the poll goes on and the poll still counts as a success. A failed poll
// calls source_failed("modal") and logs one line (per backoff step), never a secret.
#pragma once

#include <memory>

#include <boost/asio/io_context.hpp>

#include "config/config.h"
#include "model/sinks.h"

namespace mx {

class ModalSource {
 public:
  // Days of daily billing rows requested (including today), for the model's "total" cost.
  static constexpr int kBillingDailyLookbackDays = 31;

  // Throws ConfigError when config.server_url cannot be used (see parse_modal_server_url).
  // `io` and `sink` must outlive this object.
  ModalSource(boost::asio::io_context& io, ModalConfig config, BackoffConfig backoff,
              ModalSink& sink);
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
