#include "sources/modal/modal_util.h"

#include "common/base64.h"

#include <cstdlib>
#include <fstream>

#include <nlohmann/json.hpp>

namespace mx {
namespace {

constexpr std::size_t kMaxCredentialBytes = 64 * 1024;

std::string_view trim(std::string_view s) {
  const auto is_space = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
  };
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// Reads one credential from a file or an environment variable; `what` names it in errors.
std::optional<std::string> read_credential(const std::string& file, const char* env_name,
                                           const char* file_key, std::string* error) {
  std::string value;
  if (!file.empty()) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      *error = std::string("cannot read modal.") + file_key + " '" + file + "'";
      return std::nullopt;
    }
    std::string content;
    char buf[4096];
    while (in.read(buf, sizeof buf) || in.gcount() > 0) {
      content.append(buf, static_cast<std::size_t>(in.gcount()));
      if (content.size() > kMaxCredentialBytes) {
        *error = std::string("modal.") + file_key + " '" + file + "' is larger than 64 KiB";
        return std::nullopt;
      }
    }
    value = std::string(trim(content));
    if (value.empty()) {
      *error = std::string("modal.") + file_key + " '" + file + "' is empty";
      return std::nullopt;
    }
  } else {
    const char* env = std::getenv(env_name);
    value = env ? std::string(trim(env)) : std::string();
    if (value.empty()) {
      *error = std::string("modal credentials missing: ") + env_name +
               " is not set (or set modal." + file_key + ")";
      return std::nullopt;
    }
  }
  if (!valid_metadata_value(value)) {
    *error = std::string("modal credential from ") +
             (file.empty() ? std::string(env_name) : "modal." + std::string(file_key)) +
             " holds characters that cannot be sent as gRPC metadata";
    return std::nullopt;
  }
  return value;
}

}  // namespace

std::optional<ModalCredentials> load_modal_credentials(const ModalConfig& config,
                                                       std::string* error) {
  auto id = read_credential(config.token_id_file, "MODAL_TOKEN_ID", "token_id_file", error);
  if (!id) return std::nullopt;
  auto secret =
      read_credential(config.token_secret_file, "MODAL_TOKEN_SECRET", "token_secret_file", error);
  if (!secret) return std::nullopt;
  return ModalCredentials{std::move(*id), std::move(*secret)};
}

bool valid_metadata_value(std::string_view value) {
  for (unsigned char c : value) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

std::optional<std::chrono::system_clock::time_point> jwt_expiry(std::string_view token) {
  const auto first = token.find('.');
  if (first == std::string_view::npos) return std::nullopt;
  const auto second = token.find('.', first + 1);
  if (second == std::string_view::npos) return std::nullopt;
  const auto payload = base64::decode(token.substr(first + 1, second - first - 1));
  if (!payload) return std::nullopt;
  const auto json = nlohmann::json::parse(*payload, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object()) return std::nullopt;
  const auto it = json.find("exp");
  if (it == json.end() || !it->is_number()) return std::nullopt;
  const double exp = it->get<double>();
  // Far outside any sensible token lifetime: treat as unreadable rather than overflow.
  // system_clock counts int64 nanoseconds (up to ~9.2e9 s, the year 2262); a larger value would
  // overflow the conversion below (found by tests/fuzz, jwt_payload).
  if (!(exp > 0 && exp < 4.0e9)) return std::nullopt;
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::duration<double>(exp)));
}

std::string_view grpc_code_name(int code) {
  switch (code) {
    case 0:
      return "ok";
    case 1:
      return "cancelled";
    case 2:
      return "unknown";
    case 3:
      return "invalid_argument";
    case 4:
      return "deadline_exceeded";
    case 5:
      return "not_found";
    case 6:
      return "already_exists";
    case 7:
      return "permission_denied";
    case 8:
      return "resource_exhausted";
    case 9:
      return "failed_precondition";
    case 10:
      return "aborted";
    case 11:
      return "out_of_range";
    case 12:
      return "unimplemented";
    case 13:
      return "internal";
    case 14:
      return "unavailable";
    case 15:
      return "data_loss";
    case 16:
      return "unauthenticated";
    default:
      return "unknown";
  }
}

}  // namespace mx
