// Small pure helpers of the Modal client, kept apart from the gRPC plumbing so they can be unit
// tested: credential loading, JWT expiry, gRPC status code names.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "config/modal_server_urls.h"

namespace mx {

struct ModalCredentials {
  std::string token_id;
  std::string token_secret;
  bool operator==(const ModalCredentials&) const = default;
};

// From token_id_file / token_secret_file when set (surrounding whitespace trimmed, so a Secret
// mounted with a trailing newline works), else env MODAL_TOKEN_ID / MODAL_TOKEN_SECRET. On failure
// returns nullopt and sets *error to a message naming what is missing — never the value.
std::optional<ModalCredentials> load_modal_credentials(const ModalConfig& config,
                                                       std::string* error);

// True when `value` may be sent as an ASCII gRPC metadata value (printable, 0x20..0x7e). gRPC
// aborts the process on an illegal header value, so everything sent is checked first.
bool valid_metadata_value(std::string_view value);

// The `exp` claim of a JWT (unix seconds), read from its base64url JSON payload without
// verifying the signature (the server does that); nullopt when absent or unreadable.
std::optional<std::chrono::system_clock::time_point> jwt_expiry(std::string_view token);

// Lower-case gRPC code name ("unavailable", "deadline_exceeded"); error_type is "grpc_" + this.
std::string_view grpc_code_name(int code);

}  // namespace mx
