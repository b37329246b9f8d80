// HTTP basic auth against bcrypt hashes (the web config's basic_auth_users), and the token
// bucket behind rate_limit. bcrypt runs in the system's libcrypt (crypt_r) on a worker thread,
// never on the io_context thread; verified credentials are cached by a SHA-256 of the header, so
// a scrape every second costs one bcrypt per credential, not one per scrape.
#pragma once

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>

#include "common/duration.h"

namespace mx {

// True when crypt_r(password, hash) reproduces `hash` (compared in constant time).
bool bcrypt_matches(const std::string& password, const std::string& hash);

class BasicAuth {
 public:
  enum class Result { ok, missing, wrong, busy };

  explicit BasicAuth(std::map<std::string, std::string> users);

  // Checks an Authorization header value. `done` runs on `io`'s thread: right away when the
  // answer is cached or the header is malformed, else after bcrypt ran on `pool`.
  // Must be called on `io`'s thread; `done` may run before check() returns.
  void check(std::string_view authorization, boost::asio::io_context& io,
             boost::asio::thread_pool& pool, std::function<void(Result)> done);

 private:
  using Key = std::array<unsigned char, 32>;
  struct Shared {
    std::set<Key> verified;  // bounded; cleared when full
    std::set<Key> rejected;
    int pending = 0;  // bcrypt jobs queued or running
  };
  std::map<std::string, std::string> users_;
  std::string unknown_user_hash_;  // same cost as a real user: no user enumeration by timing
  std::shared_ptr<Shared> shared_;
};

// exporter-toolkit's rate_limit: `burst` requests at once, refilled at one per `interval`.
class TokenBucket {
 public:
  TokenBucket() = default;
  void configure(Duration interval, int burst);
  bool enabled() const { return interval_.count() > 0; }
  bool take(std::chrono::steady_clock::time_point now);

 private:
  Duration interval_{0};
  int burst_ = 0;
  double tokens_ = 0;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace mx
