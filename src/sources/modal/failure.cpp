#include "sources/modal/failure.h"

#include <algorithm>
#include <chrono>

#include "sources/modal/convert.h"
#include "sources/modal/modal_util.h"

namespace mx::modal_client {

FailureKind classify(const grpc::Status& status, bool reached) {
  using grpc::StatusCode;
  switch (status.error_code()) {
    case StatusCode::UNAUTHENTICATED:
    case StatusCode::PERMISSION_DENIED:
      return FailureKind::auth;
    case StatusCode::UNAVAILABLE:
    case StatusCode::DEADLINE_EXCEEDED:
      return reached ? FailureKind::transient : FailureKind::unreachable;
    case StatusCode::RESOURCE_EXHAUSTED:
      return FailureKind::rate_limited;
    case StatusCode::UNIMPLEMENTED:
      return FailureKind::unimplemented;
    case StatusCode::NOT_FOUND:
      return FailureKind::not_found;
    default:
      return modal_convert::retry_after_seconds(status) ? FailureKind::rate_limited
                                                        : FailureKind::other;
  }
}

Failure describe(std::string_view method, const grpc::Status& status, bool reached,
                 std::string detail) {
  Failure f;
  f.method = std::string(method);
  f.code = status.error_code();
  f.kind = classify(status, reached);
  f.error_type = error_type(f.code);
  f.detail = std::move(detail);
  if (const auto secs = modal_convert::retry_after_seconds(status)) {
    f.retry_after = std::chrono::duration_cast<Duration>(std::chrono::duration<double>(*secs));
  }
  switch (f.kind) {
    case FailureKind::auth:
      f.pace = Pace::wait_max;
      break;
    case FailureKind::not_found:
    case FailureKind::other:
      f.pace = Pace::go_on;
      break;
    default:
      f.pace = Pace::back_off;
      break;
  }
  return f;
}

std::string error_type(grpc::StatusCode code) {
  return "grpc_" + std::string(grpc_code_name(static_cast<int>(code)));
}

Duration honour_hint(Duration own, std::optional<Duration> hint) {
  constexpr Duration kMaxHint = std::chrono::minutes(15);
  if (!hint) return own;
  return std::max(own, std::min(*hint, kMaxHint));
}

}  // namespace mx::modal_client
