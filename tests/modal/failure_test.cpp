// The one reading of a failed Modal call (failure.h) that the poll rounds and the call budget
// share: the kind, the error type and the pace that follows.
#include "sources/modal/failure.h"

#include <chrono>

#include <gtest/gtest.h>

#include "fake_modal_server.h"
#include "modal_api.pb.h"
#include "rpc_status.pb.h"

namespace mx::modal_client {
namespace {

using grpc::Status;
using grpc::StatusCode;

TEST(ModalFailure, UnavailableIsUnreachableOnlyWithoutAConnection) {
  const Status unavailable(StatusCode::UNAVAILABLE, "x");
  EXPECT_EQ(classify(unavailable, true), FailureKind::transient);
  EXPECT_EQ(classify(unavailable, false), FailureKind::unreachable);
  const Status deadline(StatusCode::DEADLINE_EXCEEDED, "x");
  EXPECT_EQ(classify(deadline, true), FailureKind::transient);
  EXPECT_EQ(classify(deadline, false), FailureKind::unreachable);
  // Whatever else a server answers is the method's, connection or not.
  EXPECT_EQ(classify(Status(StatusCode::INTERNAL, "x"), false), FailureKind::other);
}

TEST(ModalFailure, KindsAndTheirPace) {
  auto pace = [](StatusCode code) { return describe("AppList", Status(code, "x"), true, "").pace; };
  EXPECT_EQ(pace(StatusCode::UNAUTHENTICATED), Pace::wait_max);
  EXPECT_EQ(pace(StatusCode::PERMISSION_DENIED), Pace::wait_max);
  EXPECT_EQ(pace(StatusCode::UNAVAILABLE), Pace::back_off);
  EXPECT_EQ(pace(StatusCode::DEADLINE_EXCEEDED), Pace::back_off);
  EXPECT_EQ(pace(StatusCode::RESOURCE_EXHAUSTED), Pace::back_off);
  EXPECT_EQ(pace(StatusCode::UNIMPLEMENTED), Pace::back_off);
  EXPECT_EQ(pace(StatusCode::NOT_FOUND), Pace::go_on);
  EXPECT_EQ(pace(StatusCode::INTERNAL), Pace::go_on);
  const auto f = describe("TaskList", Status(StatusCode::UNAVAILABLE, "x"), false, "scrubbed");
  EXPECT_EQ(f.method, "TaskList");
  EXPECT_EQ(f.error_type, "grpc_unavailable");
  EXPECT_EQ(f.detail, "scrubbed");
  EXPECT_FALSE(f.retry_after);
}

TEST(ModalFailure, AServersRetryHintAsksToWait) {
  ::modal::client::RPCRetryPolicy policy;
  policy.set_retry_after_secs(2.5);
  ::mx::rpc::StatusDetails details;
  *details.add_details() = mx::testing::pack_any(policy);
  const Status internal(StatusCode::INTERNAL, "x", details.SerializeAsString());
  const auto f = describe("AppList", internal, true, "");
  EXPECT_EQ(f.kind, FailureKind::rate_limited);
  EXPECT_EQ(f.pace, Pace::back_off);
  ASSERT_TRUE(f.retry_after);
  EXPECT_EQ(*f.retry_after, std::chrono::milliseconds(2500));
  // Honoured beyond the own backoff, up to 15 minutes.
  EXPECT_EQ(honour_hint(std::chrono::seconds(1), f.retry_after), std::chrono::milliseconds(2500));
  EXPECT_EQ(honour_hint(std::chrono::seconds(1), std::chrono::hours(2)), std::chrono::minutes(15));
  EXPECT_EQ(honour_hint(std::chrono::seconds(5), f.retry_after), std::chrono::seconds(5));
}

}  // namespace
}  // namespace mx::modal_client
