// What a failed Modal call means, read in one place for the poll rounds and the call budget:
// the kind of failure (auth, unreachable, rate limited, ...), the error type it is counted under,
// and how the caller paces itself afterwards.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <grpcpp/support/status.h>

#include "common/duration.h"

namespace mx::modal_client {

enum class FailureKind {
  auth,           // UNAUTHENTICATED, PERMISSION_DENIED, or no credentials to call with
  unreachable,    // no connection to the server: refused, no route, connecting timed out
  rate_limited,   // RESOURCE_EXHAUSTED, or the server asked to wait (RPCRetryPolicy)
  transient,      // UNAVAILABLE or DEADLINE_EXCEEDED from a server that was reached
  unimplemented,  // the server lacks the method: its metrics stay absent
  not_found,      // one task or function is gone: churn
  other,          // anything else, e.g. INTERNAL or INVALID_ARGUMENT
};

// What the caller does next: keep going, back off, or wait the maximum backoff.
enum class Pace { go_on, back_off, wait_max };

struct Failure {
  std::string method;  // "AppList", ...; "credentials" when there were none
  grpc::StatusCode code = grpc::StatusCode::UNKNOWN;
  FailureKind kind = FailureKind::other;
  std::string error_type;               // modal_api error type: "grpc_<code>", "auth", "parse"
  std::string detail;                   // the server's message, scrubbed of secrets
  std::optional<Duration> retry_after;  // the server's hint
  Pace pace = Pace::go_on;
  // The call never went out (no usable auth token); the error is counted already.
  bool before_call = false;
};

// `reached`: the call had a connection to its server (see Rpc::reached).
FailureKind classify(const grpc::Status& status, bool reached);

// The whole reading of one failed call; `detail` is already scrubbed.
Failure describe(std::string_view method, const grpc::Status& status, bool reached,
                 std::string detail);

// "grpc_" + the lower-case code name, as counted in modal_operator_errors_total.
std::string error_type(grpc::StatusCode code);

// A server's hint is honoured in full (beyond backoff.max), up to a sanity bound.
Duration honour_hint(Duration own, std::optional<Duration> hint);

}  // namespace mx::modal_client
