// Modal's auth for the source's calls: the token id / secret (re-read every round, so rotated
// files are picked up), the metadata every call carries, and the JWT from AuthTokenGet with its
// expiry. A JWT is refreshed after 50-60 % of its lifetime (20 min assumed without exp); while a
// refresh fails the cached token stays in use (retries 0.5 s .. 60 s apart, TokenLifetime);
// UNAUTHENTICATED / PERMISSION_DENIED from AuthTokenGet is a credentials error. A server without
// AuthTokenGet (UNIMPLEMENTED) is called with the token id / secret alone. No call is made without
// credentials, and no secret reaches a log line (scrub).
//
// Runs on the io_context thread only; AuthTokenGet itself is made through the Fetch function
// (Rpc, which fails over like for any call).
#pragma once

#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <grpcpp/client_context.h>
#include <grpcpp/support/status.h>

#include "config/config.h"
#include "model/sinks.h"
#include "sources/modal/failure.h"
#include "sources/modal/modal_util.h"
#include "sources/modal/pacing.h"

namespace mx::modal_client {

class TokenManager {
 public:
  // Makes one AuthTokenGet (with set_metadata(context, false)) and hands back its status and the
  // token it returned.
  using Fetch =
      std::function<void(std::function<void(const grpc::Status&, const std::string& token)>)>;
  // OK: call now. Otherwise the call must not be made; the error is counted already.
  using Ready = std::function<void(const grpc::Status&)>;

  // `config.client_version` and `config.libmodal_version` must be valid metadata values.
  TokenManager(const ModalConfig& config, ModalSink& sink);

  void set_fetch(Fetch fetch) { fetch_ = std::move(fetch); }

  // Reads the token id / secret again. New or rotated ones drop the cached JWT. Without them the
  // failure is counted ("auth") and returned.
  std::optional<Failure> load_credentials();
  bool has_credentials() const { return creds_.has_value(); }

  // Deadline and auth metadata of one call; with_jwt: the cached JWT too. Returns the JWT sent
  // ("" for none).
  std::string set_metadata(grpc::ClientContext& context, bool with_jwt) const;

  // Runs `ready` once a usable JWT is cached (or the server has none to give). A cached token due
  // for refresh is still used while one shared AuthTokenGet fetches the next one.
  void with_auth(Ready ready);

  // The server refused `sent` with UNAUTHENTICATED: forget it, unless a newer one is cached.
  void refused(const std::string& sent);

  // Server text can echo what it was sent: secrets and overlong text are cut out.
  std::string scrub(std::string text) const;

  // Drops the calls waiting for a token (the source is stopping).
  void stop() { waiters_.clear(); }

 private:
  void fetch();
  void on_token(const grpc::Status& status, const std::string& token);

  const ModalConfig& config_;
  ModalSink& sink_;
  Fetch fetch_;
  std::optional<ModalCredentials> creds_;
  TokenLifetime token_;
  std::mt19937_64 rng_;
  bool fetching_ = false;
  bool unsupported_ = false;  // AuthTokenGet is UNIMPLEMENTED
  std::vector<Ready> waiters_;
};

}  // namespace mx::modal_client
