// Timing policy of the Modal client, kept apart from the gRPC plumbing so it is unit tested with
// a fake clock (tests/modal/pacing_test.cpp):
//   TokenLifetime  when to refresh the JWT from AuthTokenGet, and how to back off when that fails
//   CallBudget     which per-object call (FunctionGetCurrentStats, TaskGetInfo) goes next under
//                  the calls-per-second budget
// The rules follow Modal's own clients; docs/modal.md names the upstream revision.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace mx {

// A set of Modal object ids (apps, tasks, environments) held as 64-bit hashes: the rounds and
// the budget remember which ids they asked about or saw listed, and at 10k jobs a set of the
// ids themselves (25 characters or more, each on the heap) cost ~110 bytes an id against 8.
// Two ids of one hash look like one: the second is taken as already asked about (an early
// round or a TaskGetInfo skipped until the next round; odds ~1e-11 at 10k ids).
class IdKeys {
 public:
  static std::uint64_t key(std::string_view id);

  IdKeys() = default;
  explicit IdKeys(const std::vector<std::string>& ids);

  // Adds one id ("" is no object's: left out); contains() sees it after the next seal().
  void add(std::string_view id) {
    if (!id.empty()) keys_.push_back(key(id));
  }
  void seal();
  bool contains(std::string_view id) const { return contains_key(key(id)); }
  bool contains_key(std::uint64_t key) const;
  // Whether every id of `other` is in this set (both sealed).
  bool covers(const IdKeys& other) const;
  std::size_t size() const { return keys_.size(); }
  void clear() { keys_.clear(); }

 private:
  std::vector<std::uint64_t> keys_;  // sorted and unique once sealed
};

class TokenLifetime {
 public:
  using Clock = std::chrono::system_clock;
  // Without an exp claim a token is assumed to live this long (Modal's clients: 20 minutes).
  static constexpr auto kDefaultLifetime = std::chrono::minutes(20);
  // Refresh once this fraction of the remaining lifetime has passed, plus a random part of the
  // jitter band (so many exporters started together do not refresh in lockstep).
  static constexpr double kRefreshFraction = 0.5;
  static constexpr double kRefreshJitter = 0.1;
  // After a failed refresh, no new attempt before this delay, doubling up to the maximum.
  static constexpr auto kFailureBackoffBase = std::chrono::milliseconds(500);
  static constexpr auto kFailureBackoffMax = std::chrono::seconds(60);

  // A new token from AuthTokenGet. `jitter` in [0, 1) picks the point in the jitter band.
  void accept(std::string token, std::optional<Clock::time_point> exp, Clock::time_point now,
              double jitter);
  // A refresh failed (not a refusal of the credentials): arm the failure backoff.
  void refresh_failed(Clock::time_point now);
  // Forget the token (revoked, refused, new credentials).
  void clear();

  const std::string& token() const { return token_; }
  bool usable(Clock::time_point now) const { return !token_.empty() && now < expiry_; }
  // Time to ask for a new token: none cached, expired, or past the refresh point — unless a
  // recent failure's backoff has not run out while a usable token is cached.
  bool should_refresh(Clock::time_point now) const;
  Clock::time_point refresh_at() const { return refresh_at_; }
  Clock::time_point expiry() const { return expiry_; }
  std::chrono::milliseconds next_backoff() const { return backoff_; }

 private:
  std::string token_;
  Clock::time_point expiry_{};
  Clock::time_point refresh_at_{};
  Clock::time_point retry_after_{};
  std::chrono::milliseconds backoff_ = kFailureBackoffBase;
};

// The per-object call budget. Functions are refreshed oldest first (never refreshed first), each
// at most once per `min_age`; tasks wait in arrival order for their one TaskGetInfo. When both
// have work the two take turns.
class CallBudget {
 public:
  using Clock = std::chrono::steady_clock;
  enum class Kind { none, task_info, function_stats };
  struct Next {
    Kind kind = Kind::none;
    std::string id;
    // With Kind::none: when a function next becomes due (nullopt: nothing to wait for).
    std::optional<Clock::time_point> wake;
  };

  explicit CallBudget(Clock::duration min_age) : min_age_(min_age) {}

  // The current set of functions: new ones are due at once, vanished ones forgotten.
  void set_functions(const std::vector<std::string>& ids);
  // Queues one TaskGetInfo; false when the task is already queued.
  bool add_task(const std::string& task_id);
  // Drops queued tasks that are not in `wanted` (sealed).
  void retain_tasks(const IdKeys& wanted);

  // The next call to make at `now`. A function handed out counts as refreshed at `now`.
  Next next(Clock::time_point now);

  std::size_t functions() const { return last_.size(); }
  std::size_t queued_tasks() const { return tasks_.size(); }
  // Age of the least recently refreshed function (0 when none or all never refreshed yet).
  Clock::duration oldest_age(Clock::time_point now) const;

 private:
  Clock::duration min_age_;
  // (last refresh, id), oldest first, then by id; never refreshed = time_point::min(). The id
  // is the key of its entry in last_ (a node's key stays where it is), not a second copy.
  struct Older {
    bool operator()(const std::pair<Clock::time_point, const std::string*>& a,
                    const std::pair<Clock::time_point, const std::string*>& b) const {
      return a.first != b.first ? a.first < b.first : *a.second < *b.second;
    }
  };
  std::set<std::pair<Clock::time_point, const std::string*>, Older> order_;
  std::unordered_map<std::string, Clock::time_point> last_;
  std::deque<std::string> tasks_;
  std::set<std::string> queued_;
  bool task_turn_ = true;
};

}  // namespace mx
