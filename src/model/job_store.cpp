#include "model/job_store.h"

#include "common/log.h"

namespace mx {
namespace {

std::string name_key(const JobObject& job) {
  return job.namespace_name + "/" + job.name;
}

const std::set<std::string> kNoJobs;

}  // namespace

JobPhase parse_phase(std::string_view phase) {
  if (phase.empty()) return JobPhase::none;
  if (phase == "Pending") return JobPhase::pending;
  if (phase == "Running") return JobPhase::running;
  if (phase == "Succeeded") return JobPhase::succeeded;
  if (phase == "Completed") return JobPhase::completed;
  if (phase == "Failed") return JobPhase::failed;
  return JobPhase::other;
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
  const std::string uid = job.uid;
  auto [it, inserted] = jobs_.try_emplace(uid);
  JobState& state = it->second;
  if (!inserted &&
      (state.object.namespace_name != job.namespace_name || state.object.name != job.name)) {
    release_name(state, renamed_to);
    inserted = true;
  }
  if (state.object.modal_app_id != job.modal_app_id) state.tasks_known = false;
  if (!state.object.uid.empty()) index(state.object, false);
  state.object = std::move(job);
  state.phase = parse_phase(state.object.phase);
  index(state.object, true);
  if (inserted) claim_name(state);
  is_new = inserted;
  return state;
}

std::optional<JobState> JobStore::take(const std::string& uid,
                                       std::vector<std::string>& renamed_to) {
  auto it = jobs_.find(uid);
  if (it == jobs_.end()) return std::nullopt;
  JobState state = std::move(it->second);
  jobs_.erase(it);
  release_name(state, renamed_to);
  index(state.object, false);
  return state;
}

const JobState* JobStore::owner_of(const std::string& namespace_name,
                                   const std::string& name) const {
  auto it = name_owner_.find(namespace_name + "/" + name);
  return it == name_owner_.end() ? nullptr : find(it->second);
}

const std::set<std::string>& JobStore::by_app(const std::string& app_id) const {
  auto it = by_app_.find(app_id);
  return it == by_app_.end() ? kNoJobs : it->second;
}

const std::set<std::string>& JobStore::by_function(const std::string& function_id) const {
  auto it = by_function_.find(function_id);
  return it == by_function_.end() ? kNoJobs : it->second;
}

void JobStore::claim_name(JobState& state) {
  auto [it, inserted] = name_owner_.try_emplace(name_key(state.object), state.object.uid);
  state.renders_per_job = inserted || it->second == state.object.uid;
  if (!state.renders_per_job) {
    log::warn("two jobs share a namespace and name; per-job series show the first only",
              {{"namespace", state.object.namespace_name},
               {"job_name", state.object.name},
               {"uid", state.object.uid}});
  }
}

void JobStore::release_name(const JobState& state, std::vector<std::string>& renamed_to) {
  const auto key = name_key(state.object);
  auto it = name_owner_.find(key);
  if (it == name_owner_.end() || it->second != state.object.uid) return;
  name_owner_.erase(it);
  // Hand the name to another job that carries it, if any.
  for (auto& [uid, other] : jobs_) {
    if (uid != state.object.uid && !other.renders_per_job &&
        other.object.namespace_name == state.object.namespace_name &&
        other.object.name == state.object.name) {
      name_owner_[key] = uid;
      other.renders_per_job = true;
      renamed_to.push_back(uid);
      break;
    }
  }
}

void JobStore::index(const JobObject& job, bool add) {
  auto update = [&](auto& index, const std::string& key) {
    if (key.empty()) return;
    if (add) {
      index[key].insert(job.uid);
      return;
    }
    auto it = index.find(key);
    if (it == index.end()) return;
    it->second.erase(job.uid);
    if (it->second.empty()) index.erase(it);
  };
  update(by_app_, job.modal_app_id);
  update(by_function_, job.modal_function_id);
}

}  // namespace mx
