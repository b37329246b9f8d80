// Warning Event accounting for modal_operator_errors_total{component="operator"}. An Event
// repeats by raising its own count in place, so the growth is counted per Event UID.
//
// Bounds: one entry per live Warning Event (Kubernetes deletes Events after their TTL, an hour
// by default, and the informer reports that). Events about Pods the model does not know yet are
// parked until the Pod shows up as an offloaded Pod or the Event is deleted; at most
// kMaxParked are parked. Counts restored from the state file are dropped after the first
// complete sync unless the Event is still there.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "model/objects.h"

namespace mx {

class WarningEvents {
 public:
  static constexpr std::size_t kMaxParked = 100000;

  // Whether a Pod ("ns/name") is an offloaded Pod the model knows.
  using PodKnown = std::function<bool(const std::string& pod_key)>;

  // Counts the Event's growth (or parks it). Returns true when a count changed.
  bool observe(WarningEvent event, const PodKnown& pod_known);
  void remove(const std::string& uid);
  // An offloaded Pod appeared: its parked Events count now. Returns true when a count changed.
  bool release_parked(const std::string& pod_key, const PodKnown& pod_known);
  // After a complete sync: counts restored from the state file for Events that are gone.
  std::size_t forget_unconfirmed();

  // reason -> count
  const std::map<std::string, double>& counts() const { return by_reason_; }
  std::size_t tracked() const { return last_count_.size(); }
  std::size_t parked() const { return parked_uid_.size(); }
  bool take_changed() { return std::exchange(changed_, false); }

 private:
  friend class StateFile;
  std::unordered_map<std::string, std::int64_t> last_count_;  // Event UID -> last count seen
  std::unordered_set<std::string> unconfirmed_;  // restored from the state file, not seen since
  std::map<std::string, double> by_reason_;
  // Events about Pods not known as offloaded Pods: "ns/pod" -> Event UID -> Event.
  std::unordered_map<std::string, std::map<std::string, WarningEvent>> parked_;
  std::unordered_map<std::string, std::string> parked_uid_;  // Event UID -> "ns/pod"
  bool changed_ = false;
};

}  // namespace mx
