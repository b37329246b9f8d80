// Pure parsing of Kubernetes API objects (JSON) into the model's plain structs.
// Nothing here throws for bad input: a field of the wrong type is treated as missing, and an
// object that cannot be tracked at all (no metadata.uid) is rejected with a reason.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "model/objects.h"
#include "sources/kubernetes/list_reader.h"

namespace mx::kube {

// ISO-8601 date-time -> unix seconds. Accepts `Z`, `+02:00` / `-0530` offsets, fractional
// seconds, and no zone at all (UTC: the operator writes datetime.utcnow().isoformat()).
std::optional<double> parse_timestamp(std::string_view text);

// A Kubernetes quantity ("500m", "1.5", "512Mi", "1G", "1e3") in base units; nullopt when
// malformed or negative.
std::optional<double> parse_quantity(std::string_view text);
std::optional<double> parse_cpu_cores(std::string_view text);   // same as parse_quantity
std::optional<double> parse_memory_gib(std::string_view text);  // bytes / 2^30

// "A100-80GB:2" -> {A100-80GB, 2}; "T4" -> {T4, 1}; "" -> {none, 0}.
struct GpuSpec {
  std::string type = "none";
  int count = 0;
};
GpuSpec parse_gpu(std::string_view spec);

// The result of parsing one object. `uid` is set whenever metadata.uid is a non-empty string.
// `object` is set when the object is one the exporter tracks; it is empty either because the
// object was rejected (`error` says why) or because it is simply not of interest (a Pod the
// operator does not offload, an Event about something else).
template <typename T>
struct ParseOutcome {
  std::string uid;
  std::optional<T> object;
  std::string error;

  bool rejected() const { return !error.empty(); }
};

ParseOutcome<JobObject> parse_modal_job(const nlohmann::json& object);
ParseOutcome<JobObject> parse_offloaded_pod(const nlohmann::json& object);
ParseOutcome<EndpointObject> parse_modal_endpoint(const nlohmann::json& object);
ParseOutcome<WarningEvent> parse_warning_event(const nlohmann::json& object);

// The members each parser above reads, and metadata.resourceVersion, which the informer
// reads: a LIST page builds only these (list_reader.h). A parser that reads a new member
// must list it here; tests/kubernetes/parse_test.cpp and the LIST-page fuzzer check that a
// filtered object parses exactly as the whole one.
const FieldFilter& modal_job_fields();
const FieldFilter& offloaded_pod_fields();
const FieldFilter& modal_endpoint_fields();
const FieldFilter& warning_event_fields();

// restartCount of the named container in a Pod's status.containerStatuses; nullopt if absent.
std::optional<std::int64_t> container_restart_count(const nlohmann::json& pod,
                                                    std::string_view container);

// metadata.resourceVersion of an object (or of a list), "" when missing.
std::string resource_version(const nlohmann::json& object);

}  // namespace mx::kube
