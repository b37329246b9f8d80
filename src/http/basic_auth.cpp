#include "http/basic_auth.h"

#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <cctype>
#include <cstring>

#include "common/base64.h"

namespace mx {
namespace {

constexpr std::size_t kMaxCached = 1024;
constexpr int kMaxPending = 16;  // beyond: 503, so a flood of guesses cannot queue forever

bool starts_with_basic(std::string_view v) {
  if (v.size() < 6) return false;
  static constexpr std::string_view kBasic = "basic ";
  for (std::size_t i = 0; i < kBasic.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(v[i])) != kBasic[i]) return false;
  }
  return true;
}

}  // namespace

bool bcrypt_matches(const std::string& password, const std::string& hash) {
  auto data = std::make_unique<crypt_data>();
  std::memset(data.get(), 0, sizeof(crypt_data));
  const char* out = crypt_r(password.c_str(), hash.c_str(), data.get());
  if (!out || std::strlen(out) != hash.size()) return false;
  return CRYPTO_memcmp(out, hash.data(), hash.size()) == 0;
}

BasicAuth::BasicAuth(std::map<std::string, std::string> users)
    : users_(std::move(users)), shared_(std::make_shared<Shared>()) {
  // A well-formed hash of no password anyone knows, at the first user's cost.
  const std::string cost = users_.empty() ? "$2b$10$" : users_.begin()->second.substr(0, 7);
  unknown_user_hash_ = cost + "mzde3.Lfcl6FEmkzAXHDq.JOBtS5tg0y0APGdAVf7j0sapKrLeD7G";
}

void BasicAuth::check(std::string_view authorization, boost::asio::io_context& io,
                      boost::asio::thread_pool& pool, std::function<void(Result)> done) {
  if (!starts_with_basic(authorization)) return done(Result::missing);
  Key key;
  SHA256(reinterpret_cast<const unsigned char*>(authorization.data()), authorization.size(),
         key.data());
  if (shared_->verified.count(key)) return done(Result::ok);
  if (shared_->rejected.count(key)) return done(Result::wrong);

  auto decoded = base64::decode(authorization.substr(6));
  const auto colon = decoded ? decoded->find(':') : std::string::npos;
  if (colon == std::string::npos) return done(Result::missing);
  const std::string user = decoded->substr(0, colon);
  std::string password = decoded->substr(colon + 1);
  const auto it = users_.find(user);
  const bool known = it != users_.end();
  std::string hash = known ? it->second : unknown_user_hash_;
  if (shared_->pending >= kMaxPending) return done(Result::busy);
  ++shared_->pending;
  boost::asio::post(pool, [&io, shared = shared_, key, known, password = std::move(password),
                           hash = std::move(hash), done = std::move(done)]() mutable {
    const bool ok = bcrypt_matches(password, hash) && known;
    std::fill(password.begin(), password.end(), '\0');
    boost::asio::post(io, [shared, key, ok, done = std::move(done)] {
      --shared->pending;
      auto& cache = ok ? shared->verified : shared->rejected;
      if (cache.size() >= kMaxCached) cache.clear();
      cache.insert(key);
      done(ok ? Result::ok : Result::wrong);
    });
  });
}

void TokenBucket::configure(Duration interval, int burst) {
  if (interval == interval_ && burst == burst_) return;  // a reload keeps the bucket's state
  interval_ = interval;
  burst_ = burst;
  tokens_ = burst;
  last_ = std::chrono::steady_clock::now();
}

bool TokenBucket::take(std::chrono::steady_clock::time_point now) {
  if (!enabled()) return true;
  const double elapsed = std::chrono::duration<double>(now - last_).count();
  last_ = now;
  const double per_token = std::chrono::duration<double>(interval_).count();
  tokens_ = std::min<double>(burst_, tokens_ + elapsed / per_token);
  if (tokens_ < 1) return false;
  tokens_ -= 1;
  return true;
}

}  // namespace mx
