// Every Kubernetes object parser applied to one JSON object, with the invariants parse.h promises.
// A hostile API server can send any object for any resource, so every kind sees every object.
#pragma once

#include <cmath>

#include <nlohmann/json.hpp>

#include "fuzz_support.h"
#include "sources/kubernetes/parse.h"

namespace mx::fuzz {

template <typename T>
void check_outcome(const kube::ParseOutcome<T>& outcome) {
  MX_FUZZ_CHECK(!(outcome.rejected() && outcome.object.has_value()));
  if (outcome.object) MX_FUZZ_CHECK(!outcome.uid.empty() && outcome.object->uid == outcome.uid);
}

inline void check_job(const kube::ParseOutcome<JobObject>& outcome) {
  check_outcome(outcome);
  if (!outcome.object) return;
  const JobObject& job = *outcome.object;
  MX_FUZZ_CHECK(std::isfinite(job.cpu_cores) && job.cpu_cores >= 0);
  MX_FUZZ_CHECK(std::isfinite(job.memory_gib) && job.memory_gib >= 0);
  MX_FUZZ_CHECK(job.gpu_count >= 0 && job.replicas >= 0);
  for (const auto& t : {job.created_at, job.started_at, job.finished_at}) {
    if (t) MX_FUZZ_CHECK(std::isfinite(*t));
  }
}

inline void parse_every_kind(const nlohmann::json& object) {
  check_job(kube::parse_modal_job(object));
  check_job(kube::parse_offloaded_pod(object));
  check_outcome(kube::parse_modal_endpoint(object));
  check_outcome(kube::parse_warning_event(object));
  (void)kube::container_restart_count(object, "modal-operator");
  (void)kube::resource_version(object);
}

}  // namespace mx::fuzz
