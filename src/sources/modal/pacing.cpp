#include "sources/modal/pacing.h"

#include <algorithm>
#include <functional>

namespace mx {

std::uint64_t IdKeys::key(std::string_view id) {
  return std::hash<std::string_view>{}(id);
}

IdKeys::IdKeys(const std::vector<std::string>& ids) {
  keys_.reserve(ids.size());
  for (const auto& id : ids) add(id);
  seal();
}

void IdKeys::seal() {
  std::sort(keys_.begin(), keys_.end());
  keys_.erase(std::unique(keys_.begin(), keys_.end()), keys_.end());
  keys_.shrink_to_fit();
}

bool IdKeys::contains_key(std::uint64_t key) const {
  return std::binary_search(keys_.begin(), keys_.end(), key);
}

bool IdKeys::covers(const IdKeys& other) const {
  return std::includes(keys_.begin(), keys_.end(), other.keys_.begin(), other.keys_.end());
}

void TokenLifetime::accept(std::string token, std::optional<Clock::time_point> exp,
                           Clock::time_point now, double jitter) {
  token_ = std::move(token);
  expiry_ = exp ? *exp : now + kDefaultLifetime;
  const auto remaining = std::max(expiry_ - now, Clock::duration::zero());
  const double fraction = kRefreshFraction + std::clamp(jitter, 0.0, 1.0) * kRefreshJitter;
  refresh_at_ = now + std::chrono::duration_cast<Clock::duration>(remaining * fraction);
  retry_after_ = {};
  backoff_ = kFailureBackoffBase;
}

void TokenLifetime::refresh_failed(Clock::time_point now) {
  retry_after_ = now + backoff_;
  backoff_ = std::min<std::chrono::milliseconds>(backoff_ * 2, kFailureBackoffMax);
}

void TokenLifetime::clear() {
  token_.clear();
  expiry_ = {};
  refresh_at_ = {};
}

bool TokenLifetime::should_refresh(Clock::time_point now) const {
  if (!usable(now)) return true;
  return now >= refresh_at_ && now >= retry_after_;
}

void CallBudget::set_functions(const std::vector<std::string>& ids) {
  std::set<std::string> wanted(ids.begin(), ids.end());
  wanted.erase(std::string());
  for (auto it = last_.begin(); it != last_.end();) {
    if (wanted.contains(it->first)) {
      ++it;
      continue;
    }
    order_.erase({it->second, &it->first});
    it = last_.erase(it);
  }
  for (const auto& id : wanted) {
    const auto [it, added] = last_.emplace(id, Clock::time_point::min());
    if (added) order_.emplace(Clock::time_point::min(), &it->first);
  }
}

bool CallBudget::add_task(const std::string& task_id) {
  if (task_id.empty() || !queued_.insert(task_id).second) return false;
  tasks_.push_back(task_id);
  return true;
}

void CallBudget::retain_tasks(const IdKeys& wanted) {
  std::deque<std::string> kept;
  for (auto& id : tasks_) {
    if (wanted.contains(id)) {
      kept.push_back(std::move(id));
    } else {
      queued_.erase(id);
    }
  }
  tasks_ = std::move(kept);
}

CallBudget::Next CallBudget::next(Clock::time_point now) {
  Next out;
  const bool function_due = !order_.empty() && (order_.begin()->first == Clock::time_point::min() ||
                                                order_.begin()->first + min_age_ <= now);
  const bool task_waiting = !tasks_.empty();
  if (task_waiting && (task_turn_ || !function_due)) {
    out.kind = Kind::task_info;
    out.id = std::move(tasks_.front());
    tasks_.pop_front();
    queued_.erase(out.id);
    task_turn_ = false;
    return out;
  }
  if (function_due) {
    auto node = order_.extract(order_.begin());
    out.kind = Kind::function_stats;
    out.id = *node.value().second;
    node.value().first = now;
    order_.insert(std::move(node));
    last_.at(out.id) = now;
    task_turn_ = true;
    return out;
  }
  if (!order_.empty()) out.wake = order_.begin()->first + min_age_;
  return out;
}

CallBudget::Clock::duration CallBudget::oldest_age(Clock::time_point now) const {
  if (order_.empty() || order_.begin()->first == Clock::time_point::min()) {
    return Clock::duration::zero();
  }
  return now - order_.begin()->first;
}

}  // namespace mx
