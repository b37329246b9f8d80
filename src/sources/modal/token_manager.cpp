#include "sources/modal/token_manager.h"

#include <chrono>
#include <utility>

#include "common/log.h"

namespace mx::modal_client {
namespace {

constexpr std::string_view kComponent = "modal_api";
constexpr std::size_t kMaxDetailChars = 200;

}  // namespace

TokenManager::TokenManager(const ModalConfig& config, ModalSink& sink)
    : config_(config), sink_(sink), rng_(std::random_device{}()) {}

std::optional<Failure> TokenManager::load_credentials() {
  std::string error;
  auto creds = load_modal_credentials(config_, &error);
  if (!creds) {
    sink_.count_error(kComponent, "auth");
    Failure f;
    f.method = "credentials";
    f.code = grpc::StatusCode::UNAUTHENTICATED;
    f.kind = FailureKind::auth;
    f.error_type = "auth";
    f.detail = error;
    // Not the maximum: a Secret mounted a moment later is picked up soon.
    f.pace = Pace::back_off;
    f.before_call = true;
    return f;
  }
  if (!creds_ || !(*creds_ == *creds)) {
    // New or rotated credentials: a JWT minted for the old ones must not be reused.
    token_.clear();
    unsupported_ = false;
    creds_ = std::move(creds);
  }
  return std::nullopt;
}

std::string TokenManager::set_metadata(grpc::ClientContext& context, bool with_jwt) const {
  context.set_deadline(std::chrono::system_clock::now() + config_.call_timeout);
  context.AddMetadata("x-modal-token-id", creds_->token_id);
  context.AddMetadata("x-modal-token-secret", creds_->token_secret);
  context.AddMetadata("x-modal-client-type", std::to_string(config_.client_type));
  context.AddMetadata("x-modal-client-version", config_.client_version);
  context.AddMetadata("x-modal-libmodal-version", config_.libmodal_version);
  if (!with_jwt || token_.token().empty()) return {};
  context.AddMetadata("x-modal-auth-token", token_.token());
  return token_.token();
}

void TokenManager::with_auth(Ready ready) {
  const auto now = std::chrono::system_clock::now();
  if (unsupported_ || !token_.should_refresh(now)) {
    ready(grpc::Status::OK);
    return;
  }
  if (token_.usable(now)) {
    fetch();  // in the background
    ready(grpc::Status::OK);
    return;
  }
  waiters_.push_back(std::move(ready));
  fetch();
}

void TokenManager::refused(const std::string& sent) {
  if (token_.token() == sent) token_.clear();
}

void TokenManager::fetch() {
  if (fetching_) return;
  fetching_ = true;
  fetch_([this](const grpc::Status& status, const std::string& token) { on_token(status, token); });
}

void TokenManager::on_token(const grpc::Status& status, const std::string& token) {
  fetching_ = false;
  const auto now = std::chrono::system_clock::now();
  grpc::Status result = grpc::Status::OK;
  const auto code = status.error_code();
  const auto kind = classify(status, true);
  if (status.ok()) {
    if (token.empty() || !valid_metadata_value(token)) {
      // Nonsense from the server: go on with the token id/secret alone this time.
      sink_.count_error(kComponent, "parse");
      log::warn("modal AuthTokenGet returned an unusable token; calling without it");
      token_.clear();
      token_.refresh_failed(now);
    } else {
      const auto exp = jwt_expiry(token);
      if (!exp) log::debug("modal auth token has no exp claim; assuming 20 minutes");
      token_.accept(token, exp, now, std::uniform_real_distribution<double>(0, 1)(rng_));
    }
  } else if (kind == FailureKind::unimplemented) {
    unsupported_ = true;
    log::info("modal server does not implement AuthTokenGet; calling without x-modal-auth-token");
  } else if (kind == FailureKind::auth) {
    // The server refused the token id/secret themselves: a credentials error, whatever is cached.
    token_.clear();
    sink_.count_error(kComponent, error_type(code));
    log::warn("modal refused the credentials (AuthTokenGet); check the token id and secret",
              {{"error_type", error_type(code)}});
    result = grpc::Status(code, "AuthTokenGet: credentials refused");
  } else {
    sink_.count_error(kComponent, error_type(code));
    token_.refresh_failed(now);
    if (token_.usable(now)) {
      log::warn(
          "modal auth token refresh failed; using the cached token",
          {{"error_type", error_type(code)},
           {"retry_in",
            format_duration(std::chrono::duration_cast<Duration>(token_.next_backoff() / 2))}});
    } else {
      result = grpc::Status(code, "AuthTokenGet: " + status.error_message());
    }
  }
  auto waiters = std::move(waiters_);
  waiters_.clear();
  for (auto& ready : waiters) ready(result);
}

std::string TokenManager::scrub(std::string text) const {
  auto redact = [&text](const std::string& secret) {
    if (secret.empty()) return;
    for (auto pos = text.find(secret); pos != std::string::npos; pos = text.find(secret, pos)) {
      text.replace(pos, secret.size(), "<redacted>");
      pos += 10;
    }
  };
  if (creds_) redact(creds_->token_secret);
  redact(token_.token());
  if (text.size() > kMaxDetailChars) text = text.substr(0, kMaxDetailChars) + "...";
  for (auto& c : text) {
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  }
  return text;
}

}  // namespace mx::modal_client
