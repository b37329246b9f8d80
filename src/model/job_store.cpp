#include "model/job_store.h"

#include <functional>

#include "common/log.h"

namespace mx {

std::size_t JobStore::NameKeyHash::operator()(const NameKey& k) const {
  const std::hash<std::string_view> h;
  return h(k.namespace_name) * 31 + h(k.name);
}

JobState* JobStore::find(const std::string& uid) {
  auto it = jobs_.find(uid);
  return it == jobs_.end() ? nullptr : &it->second;
}

const JobState* JobStore::find(const std::string& uid) const {
  auto it = jobs_.find(uid);
  return it == jobs_.end() ? nullptr : &it->second;
}

JobState& JobStore::put(JobObject job, bool& is_new, std::vector<std::string>& renamed_to) {
  auto [it, inserted] = jobs_.try_emplace(job.uid);
  JobState& state = it->second;
  bool claim = inserted;
  bool owner = false;
  if (!inserted) {
    if (state.object.namespace_name != job.namespace_name || state.object.name != job.name) {
      release_name(state, renamed_to);
      claim = true;
    } else if (state.renders_per_job) {
      // Its name key views the strings about to be replaced: re-keyed below.
      name_owner_.erase(name_of(state));
      owner = true;
    }
    if (state.object.modal_app_id != job.modal_app_id) state.tasks_known = false;
    index(state, false);
    count_gpu(state, false);
  }
  state.object = std::move(job);
  state.phase = parse_phase(state.object.phase);
  index(state, true);
  count_gpu(state, true);
  if (claim) claim_name(state);
  if (owner) name_owner_.emplace(name_of(state), &state);
  is_new = claim;
  return state;
}

std::optional<JobState> JobStore::take(const std::string& uid,
                                       std::vector<std::string>& renamed_to) {
  auto it = jobs_.find(uid);
  if (it == jobs_.end()) return std::nullopt;
  release_name(it->second, renamed_to);
  index(it->second, false);
  count_gpu(it->second, false);
  JobState state = std::move(it->second);
  jobs_.erase(it);
  return state;
}

const JobState* JobStore::owner_of(const std::string& namespace_name,
                                   const std::string& name) const {
  auto it = name_owner_.find(NameKey{namespace_name, name});
  return it == name_owner_.end() ? nullptr : it->second;
}

std::vector<JobState*> JobStore::lookup(const Index& index, std::string_view key) {
  std::vector<JobState*> out;
  if (key.empty()) return out;
  auto [first, last] = index.equal_range(key);
  for (auto it = first; it != last; ++it) out.push_back(it->second);
  return out;
}

std::vector<JobState*> JobStore::with_app(std::string_view app_id) {
  return lookup(by_app_, app_id);
}

std::vector<JobState*> JobStore::with_function(std::string_view function_id) {
  return lookup(by_function_, function_id);
}

void JobStore::claim_name(JobState& state) {
  auto [it, inserted] = name_owner_.try_emplace(name_of(state), &state);
  state.renders_per_job = inserted;
  if (!inserted) {
    ++shadowed_;
    log::warn("two jobs share a namespace and name; per-job series show the first only",
              {{"namespace", state.object.namespace_name},
               {"job_name", state.object.name},
               {"uid", state.object.uid}});
  }
}

void JobStore::release_name(JobState& state, std::vector<std::string>& renamed_to) {
  if (!state.renders_per_job) {
    --shadowed_;  // it owned no name; claim_name() counts it again if it stays
    return;
  }
  name_owner_.erase(name_of(state));
  if (shadowed_ == 0) return;
  // Hand the name to another job that carries it, if any.
  for (auto& [uid, other] : jobs_) {
    if (&other != &state && !other.renders_per_job &&
        other.object.namespace_name == state.object.namespace_name &&
        other.object.name == state.object.name) {
      name_owner_.emplace(name_of(other), &other);
      other.renders_per_job = true;
      --shadowed_;
      renamed_to.push_back(uid);
      break;
    }
  }
}

void JobStore::count_gpu(const JobState& state, bool add) {
  const std::string& gpu = state.object.gpu_type;
  const std::size_t active = is_active(state.phase) ? 1 : 0;
  if (add) {
    auto it = gpu_counts_.find(gpu);
    if (it == gpu_counts_.end()) it = gpu_counts_.emplace(gpu, GpuCount{}).first;
    ++it->second.jobs;
    it->second.active += active;
    return;
  }
  auto it = gpu_counts_.find(gpu);
  if (it == gpu_counts_.end()) return;  // cannot happen: every stored job was counted
  it->second.active -= active;
  if (--it->second.jobs == 0) gpu_counts_.erase(it);
}

void JobStore::index(JobState& state, bool add) {
  auto update = [&](Index& index, const std::string& key) {
    if (key.empty()) return;
    if (add) {
      index.emplace(key, &state);
      return;
    }
    auto [first, last] = index.equal_range(key);
    for (auto it = first; it != last; ++it) {
      if (it->second == &state) {
        index.erase(it);
        return;
      }
    }
  };
  update(by_app_, state.object.modal_app_id);
  update(by_function_, state.object.modal_function_id);
}

}  // namespace mx
