#include "model/warning_events.h"

#include <algorithm>

namespace mx {

bool WarningEvents::observe(WarningEvent event, const PodKnown& pod_known) {
  if (event.about_pod && !event.operator_pod) {
    auto key = event.namespace_name + "/" + event.pod_name;
    if (!pod_known(key)) {
      // The Pod may be an offloaded Pod whose informer has not delivered it yet.
      if (parked_uid_.count(event.uid) || parked_uid_.size() < kMaxParked) {
        parked_uid_[event.uid] = key;
        parked_[key][event.uid] = std::move(event);
      }
      return false;
    }
  }
  unconfirmed_.erase(event.uid);
  auto [it, inserted] = last_count_.try_emplace(event.uid, 0);
  const std::int64_t growth = event.count - it->second;
  if (growth <= 0 && !inserted) return false;
  it->second = std::max(event.count, it->second);
  changed_ = true;
  if (growth <= 0) return false;
  by_reason_[event.reason.empty() ? "Unknown" : event.reason] += static_cast<double>(growth);
  return true;
}

void WarningEvents::remove(const std::string& uid) {
  if (last_count_.erase(uid)) changed_ = true;
  unconfirmed_.erase(uid);
  auto parked = parked_uid_.find(uid);
  if (parked == parked_uid_.end()) return;
  auto events = parked_.find(parked->second);
  if (events != parked_.end()) {
    events->second.erase(uid);
    if (events->second.empty()) parked_.erase(events);
  }
  parked_uid_.erase(parked);
}

bool WarningEvents::release_parked(const std::string& pod_key, const PodKnown& pod_known) {
  auto events = parked_.find(pod_key);
  if (events == parked_.end()) return false;
  auto pending = std::move(events->second);
  parked_.erase(events);
  bool counted = false;
  for (auto& [uid, event] : pending) {
    parked_uid_.erase(uid);
    counted = observe(std::move(event), pod_known) || counted;
  }
  return counted;
}

std::size_t WarningEvents::forget_unconfirmed() {
  const std::size_t gone = unconfirmed_.size();
  for (const auto& uid : unconfirmed_) last_count_.erase(uid);
  unconfirmed_.clear();
  if (gone) changed_ = true;
  return gone;
}

}  // namespace mx
