// Unit tests of the pure object parsing: null and missing fields everywhere, timestamps,
// quantities, GPU specs.
#include "sources/kubernetes/parse.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace mx::kube {
namespace {

using nlohmann::json;

// 2024-01-02T03:04:05Z
constexpr double kT0 = 1704164645.0;

TEST(Timestamp, ZuluOffsetsFractionsAndBare) {
  EXPECT_DOUBLE_EQ(*parse_timestamp("2024-01-02T03:04:05Z"), kT0);
  EXPECT_DOUBLE_EQ(*parse_timestamp("2024-01-02T03:04:05z"), kT0);
  EXPECT_DOUBLE_EQ(*parse_timestamp("2024-01-02T05:04:05+02:00"), kT0);
  EXPECT_DOUBLE_EQ(*parse_timestamp("2024-01-01T21:34:05-05:30"), kT0);
  EXPECT_DOUBLE_EQ(*parse_timestamp("2024-01-02T05:04:05+0200"), kT0);
  EXPECT_DOUBLE_EQ(*parse_timestamp("2024-01-02T03:04:05"), kT0);  // bare = UTC (operator)
  EXPECT_DOUBLE_EQ(*parse_timestamp("2024-01-02 03:04:05"), kT0);
  EXPECT_NEAR(*parse_timestamp("2024-01-02T03:04:05.250Z"), kT0 + 0.25, 1e-6);
  EXPECT_NEAR(*parse_timestamp("2024-01-02T03:04:05.123456"), kT0 + 0.123456, 1e-6);
  EXPECT_NEAR(*parse_timestamp("2024-01-02T05:04:05.5+02:00"), kT0 + 0.5, 1e-6);
  EXPECT_DOUBLE_EQ(*parse_timestamp("1970-01-01T00:00:00Z"), 0.0);
  EXPECT_DOUBLE_EQ(*parse_timestamp("2024-02-29T00:00:00Z"), 1709164800.0);  // leap day
  EXPECT_DOUBLE_EQ(*parse_timestamp("2024-01-02"), kT0 - 3 * 3600 - 4 * 60 - 5);
}

TEST(Timestamp, RejectsMalformed) {
  for (const char* bad :
       {"", "yesterday", "2024-13-01T00:00:00Z", "2023-02-29T00:00:00Z", "2024-01-02T25:00:00Z",
        "2024-01-02T03:04:05Q", "2024-01-02T03:04:05+2", "2024-01-02T03:04:05.Z",
        "2024-01-02T03:04:05Z trailing", "24-01-02T03:04:05Z", "2024-01-02T03:60:00Z"}) {
    EXPECT_FALSE(parse_timestamp(bad).has_value()) << bad;
  }
}

TEST(Quantity, CpuAndMemory) {
  EXPECT_DOUBLE_EQ(*parse_cpu_cores("1.0"), 1.0);
  EXPECT_DOUBLE_EQ(*parse_cpu_cores("500m"), 0.5);
  EXPECT_DOUBLE_EQ(*parse_cpu_cores("2"), 2.0);
  EXPECT_DOUBLE_EQ(*parse_cpu_cores("0.25"), 0.25);
  EXPECT_DOUBLE_EQ(*parse_cpu_cores(".5"), 0.5);
  EXPECT_DOUBLE_EQ(*parse_memory_gib("512Mi"), 0.5);
  EXPECT_DOUBLE_EQ(*parse_memory_gib("1Gi"), 1.0);
  EXPECT_DOUBLE_EQ(*parse_memory_gib("1G"), 1e9 / (1024.0 * 1024 * 1024));
  EXPECT_DOUBLE_EQ(*parse_memory_gib("1000M"), 1e9 / (1024.0 * 1024 * 1024));
  EXPECT_DOUBLE_EQ(*parse_memory_gib("2048Ki"), 2.0 / 1024);
  EXPECT_DOUBLE_EQ(*parse_memory_gib("1073741824"), 1.0);
  EXPECT_DOUBLE_EQ(*parse_quantity("1e3"), 1000.0);
  EXPECT_DOUBLE_EQ(*parse_quantity("1E"), 1e18);  // exa, not an exponent
  EXPECT_DOUBLE_EQ(*parse_quantity(" 3k "), 3000.0);
}

TEST(Quantity, RejectsMalformed) {
  for (const char* bad : {"", "-1", "abc", "1.2.3", "12XB", "m", "1 Gi", ".", "1e"}) {
    EXPECT_FALSE(parse_quantity(bad).has_value()) << bad;
  }
}

TEST(Gpu, Specs) {
  auto g = parse_gpu("T4");
  EXPECT_EQ(g.type, "T4");
  EXPECT_EQ(g.count, 1);
  g = parse_gpu("A100-80GB:2");
  EXPECT_EQ(g.type, "A100-80GB");
  EXPECT_EQ(g.count, 2);
  g = parse_gpu("H100:8");
  EXPECT_EQ(g.count, 8);
  g = parse_gpu("");
  EXPECT_EQ(g.type, "none");
  EXPECT_EQ(g.count, 0);
  g = parse_gpu("  ");
  EXPECT_EQ(g.type, "none");
  g = parse_gpu("L4:lots");  // a bad count still names one GPU
  EXPECT_EQ(g.type, "L4");
  EXPECT_EQ(g.count, 1);
}

json full_modal_job() {
  return json::parse(R"({
    "apiVersion": "modal-operator.io/v1alpha1", "kind": "ModalJob",
    "metadata": {"name": "train", "namespace": "ml", "uid": "u-1", "resourceVersion": "7",
                 "creationTimestamp": "2024-01-02T03:00:00Z",
                 "annotations": {"modal-operator.io/telemetry-url": "http://t:9400/metrics"}},
    "spec": {"image": "python:3.11", "gpu": "A100-80GB:2", "replicas": 3, "enable_i6pn": true,
             "cpu": "500m", "memory": "2Gi"},
    "status": {"phase": "Running", "modal_app_id": "ap-1", "modal_function_id": "fu-1",
               "created_at": "2024-01-02T03:04:05", "started_at": "2024-01-02T03:04:15.5",
               "finished_at": null}
  })");
}

TEST(ModalJob, AllFields) {
  auto r = parse_modal_job(full_modal_job());
  ASSERT_FALSE(r.rejected()) << r.error;
  ASSERT_TRUE(r.object);
  const JobObject& j = *r.object;
  EXPECT_EQ(r.uid, "u-1");
  EXPECT_EQ(j.uid, "u-1");
  EXPECT_EQ(j.kind, "ModalJob");
  EXPECT_EQ(j.namespace_name, "ml");
  EXPECT_EQ(j.name, "train");
  EXPECT_EQ(j.gpu_type, "A100-80GB");
  EXPECT_EQ(j.gpu_count, 2);
  EXPECT_EQ(j.replicas, 3);
  EXPECT_TRUE(j.i6pn);
  EXPECT_DOUBLE_EQ(j.cpu_cores, 0.5);
  EXPECT_DOUBLE_EQ(j.memory_gib, 2.0);
  EXPECT_EQ(j.phase, "Running");
  EXPECT_EQ(j.modal_app_id, "ap-1");
  EXPECT_EQ(j.modal_function_id, "fu-1");
  EXPECT_DOUBLE_EQ(*j.created_at, kT0);  // status wins over metadata
  EXPECT_DOUBLE_EQ(*j.started_at, kT0 + 10.5);
  EXPECT_FALSE(j.finished_at);
  EXPECT_EQ(j.telemetry_url, "http://t:9400/metrics");
  EXPECT_FALSE(j.webhook_mutated);
}

TEST(ModalJob, MinimalObjectGetsDefaults) {
  auto r = parse_modal_job(json::parse(R"({"metadata": {"uid": "u-2", "name": "n"}})"));
  ASSERT_TRUE(r.object);
  const JobObject& j = *r.object;
  EXPECT_EQ(j.gpu_type, "none");
  EXPECT_EQ(j.gpu_count, 0);
  EXPECT_EQ(j.replicas, 1);
  EXPECT_FALSE(j.i6pn);
  EXPECT_DOUBLE_EQ(j.cpu_cores, 1.0);
  EXPECT_DOUBLE_EQ(j.memory_gib, 0.5);
  EXPECT_EQ(j.phase, "");
  EXPECT_FALSE(j.created_at);
  EXPECT_FALSE(j.started_at);
  EXPECT_EQ(j.modal_app_id, "");
}

TEST(ModalJob, NullsEverywhere) {
  auto r = parse_modal_job(json::parse(R"({
    "metadata": {"uid": "u-3", "name": null, "namespace": null, "annotations": null,
                 "creationTimestamp": "2024-01-02T03:04:05Z"},
    "spec": {"gpu": null, "replicas": null, "enable_i6pn": null, "cpu": null, "memory": null},
    "status": {"phase": null, "modal_app_id": null, "created_at": null, "started_at": null,
               "finished_at": null, "conditions": null}
  })"));
  ASSERT_TRUE(r.object);
  EXPECT_EQ(r.object->gpu_type, "none");
  EXPECT_EQ(r.object->replicas, 1);
  EXPECT_EQ(r.object->phase, "");
  EXPECT_DOUBLE_EQ(*r.object->created_at, kT0);  // falls back to metadata.creationTimestamp
  EXPECT_FALSE(r.object->started_at);
}

TEST(ModalJob, SpecAndStatusNullOrWrongType) {
  for (const char* text : {R"({"metadata": {"uid": "u"}, "spec": null, "status": null})",
                           R"({"metadata": {"uid": "u"}, "spec": [], "status": "weird"})",
                           R"({"metadata": {"uid": "u"}, "spec": 5, "status": true})"}) {
    auto r = parse_modal_job(json::parse(text));
    ASSERT_TRUE(r.object) << text;
    EXPECT_EQ(r.object->gpu_type, "none");
    EXPECT_EQ(r.object->phase, "");
  }
}

TEST(ModalJob, WrongTypedFieldsAreMissing) {
  auto r = parse_modal_job(json::parse(R"({
    "metadata": {"uid": "u-4", "name": 42, "namespace": ["x"], "creationTimestamp": 17},
    "spec": {"gpu": 7, "replicas": "three", "enable_i6pn": "yes", "cpu": {"a": 1},
             "memory": [1]},
    "status": {"phase": 3, "modal_app_id": {}, "created_at": 5, "started_at": "not a time"}
  })"));
  ASSERT_TRUE(r.object) << r.error;
  const JobObject& j = *r.object;
  EXPECT_EQ(j.name, "");
  EXPECT_EQ(j.namespace_name, "");
  EXPECT_EQ(j.gpu_type, "none");
  EXPECT_EQ(j.replicas, 1);
  EXPECT_FALSE(j.i6pn);
  EXPECT_DOUBLE_EQ(j.cpu_cores, 1.0);
  EXPECT_DOUBLE_EQ(j.memory_gib, 0.5);
  EXPECT_EQ(j.phase, "");
  EXPECT_FALSE(j.created_at);
  EXPECT_FALSE(j.started_at);
}

TEST(ModalJob, GpuVariants) {
  auto job = full_modal_job();
  job["spec"]["gpu"] = "T4";
  EXPECT_EQ(parse_modal_job(job).object->gpu_type, "T4");
  EXPECT_EQ(parse_modal_job(job).object->gpu_count, 1);
  job["spec"]["gpu"] = nullptr;
  EXPECT_EQ(parse_modal_job(job).object->gpu_type, "none");
  EXPECT_EQ(parse_modal_job(job).object->gpu_count, 0);
  job["spec"]["gpu"] = "";
  EXPECT_EQ(parse_modal_job(job).object->gpu_type, "none");
  job["spec"].erase("gpu");
  EXPECT_EQ(parse_modal_job(job).object->gpu_type, "none");
}

TEST(ModalJob, NumericQuantitiesAndFloatReplicas) {
  auto job = full_modal_job();
  job["spec"]["cpu"] = 2;
  job["spec"]["memory"] = 1073741824;
  job["spec"]["replicas"] = 4.0;
  auto r = parse_modal_job(job);
  EXPECT_DOUBLE_EQ(r.object->cpu_cores, 2.0);
  EXPECT_DOUBLE_EQ(r.object->memory_gib, 1.0);
  EXPECT_EQ(r.object->replicas, 4);
  job["spec"]["replicas"] = 0;
  EXPECT_EQ(parse_modal_job(job).object->replicas, 1);
  job["spec"]["replicas"] = -3;
  EXPECT_EQ(parse_modal_job(job).object->replicas, 1);
  job["spec"]["cpu"] = "bogus";
  EXPECT_DOUBLE_EQ(parse_modal_job(job).object->cpu_cores, 1.0);
}

TEST(ModalJob, MissingUidIsRejectedWithReason) {
  auto r = parse_modal_job(json::parse(R"({"metadata": {"name": "x", "namespace": "ns"}})"));
  EXPECT_FALSE(r.object);
  EXPECT_TRUE(r.rejected());
  EXPECT_NE(r.error.find("metadata.uid"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("ns/x"), std::string::npos) << r.error;

  for (const char* text : {R"({})", R"({"metadata": null})", R"({"metadata": {"uid": null}})",
                           R"({"metadata": {"uid": 5}})", R"({"metadata": {"uid": ""}})", R"([])",
                           R"("str")", R"(null)", R"(12)"}) {
    auto rr = parse_modal_job(json::parse(text));
    EXPECT_FALSE(rr.object) << text;
    EXPECT_TRUE(rr.rejected()) << text;
  }
}

json offloaded_pod() {
  return json::parse(R"({
    "metadata": {"name": "p", "namespace": "ns", "uid": "pod-1",
                 "creationTimestamp": "2024-01-02T03:04:05Z",
                 "annotations": {"modal-operator.io/use-modal": "true",
                                 "modal-operator.io/gpu": "A100:1",
                                 "modal-operator.io/replicas": "2",
                                 "modal-operator.io/enable-i6pn": "true",
                                 "modal-operator.io/cpu": "250m",
                                 "modal-operator.io/memory": "1Gi",
                                 "modal-operator.io/mutated": "true",
                                 "modal-operator.io/telemetry-url": "http://x/metrics"}},
    "status": {"phase": "Succeeded", "startTime": "2024-01-02T03:04:10Z",
               "containerStatuses": [
                 {"name": "a", "state": {"terminated": {"finishedAt": "2024-01-02T03:05:00Z"}}},
                 {"name": "b", "state": {"terminated": {"finishedAt": "2024-01-02T03:06:00Z"}}},
                 {"name": "c", "state": {"running": {}}},
                 null, 5]}
  })");
}

TEST(Pod, OffloadedPodAnnotations) {
  auto r = parse_offloaded_pod(offloaded_pod());
  ASSERT_TRUE(r.object) << r.error;
  const JobObject& j = *r.object;
  EXPECT_EQ(j.kind, "Pod");
  EXPECT_EQ(j.uid, "pod-1");
  EXPECT_EQ(j.gpu_type, "A100");
  EXPECT_EQ(j.gpu_count, 1);
  EXPECT_EQ(j.replicas, 2);
  EXPECT_TRUE(j.i6pn);
  EXPECT_DOUBLE_EQ(j.cpu_cores, 0.25);
  EXPECT_DOUBLE_EQ(j.memory_gib, 1.0);
  EXPECT_TRUE(j.webhook_mutated);
  EXPECT_EQ(j.telemetry_url, "http://x/metrics");
  EXPECT_EQ(j.phase, "Succeeded");
  EXPECT_DOUBLE_EQ(*j.created_at, kT0);
  EXPECT_DOUBLE_EQ(*j.started_at, kT0 + 5);
  EXPECT_DOUBLE_EQ(*j.finished_at, kT0 + 115);  // the latest terminated container
}

TEST(Pod, OffloadAnnotationAlsoCounts) {
  auto pod = offloaded_pod();
  pod["metadata"]["annotations"] = {{"modal-operator.io/offload", "true"}};
  auto r = parse_offloaded_pod(pod);
  ASSERT_TRUE(r.object);
  EXPECT_EQ(r.object->gpu_type, "none");
  EXPECT_EQ(r.object->replicas, 1);
  EXPECT_FALSE(r.object->webhook_mutated);
  EXPECT_DOUBLE_EQ(r.object->cpu_cores, 1.0);
  EXPECT_DOUBLE_EQ(r.object->memory_gib, 0.5);
}

TEST(Pod, OrdinaryPodIsNotAJob) {
  auto pod = offloaded_pod();
  pod["metadata"]["annotations"]["modal-operator.io/use-modal"] = "false";
  auto r = parse_offloaded_pod(pod);
  EXPECT_FALSE(r.object);
  EXPECT_FALSE(r.rejected());
  EXPECT_EQ(r.uid, "pod-1");  // known, so a formerly offloaded Pod can be deleted

  pod["metadata"]["annotations"] = nullptr;
  EXPECT_FALSE(parse_offloaded_pod(pod).object);
  pod["metadata"].erase("annotations");
  EXPECT_FALSE(parse_offloaded_pod(pod).object);
  pod["metadata"]["annotations"] = {{"modal-operator.io/use-modal", true}};  // not a string
  EXPECT_FALSE(parse_offloaded_pod(pod).object);
}

TEST(Pod, NullStatusAndBadAnnotations) {
  auto r = parse_offloaded_pod(json::parse(R"({
    "metadata": {"uid": "pod-2", "annotations": {"modal-operator.io/use-modal": "TRUE",
                 "modal-operator.io/gpu": null, "modal-operator.io/replicas": "many",
                 "modal-operator.io/cpu": 4, "modal-operator.io/memory": "lots"}},
    "status": {"phase": null, "startTime": null, "containerStatuses": null}
  })"));
  ASSERT_TRUE(r.object);
  EXPECT_EQ(r.object->gpu_type, "none");
  EXPECT_EQ(r.object->replicas, 1);
  EXPECT_DOUBLE_EQ(r.object->cpu_cores, 1.0);
  EXPECT_DOUBLE_EQ(r.object->memory_gib, 0.5);
  EXPECT_FALSE(r.object->started_at);
  EXPECT_FALSE(r.object->finished_at);
  EXPECT_FALSE(r.object->created_at);

  auto no_uid = parse_offloaded_pod(json::parse(R"({"metadata": {"name": "p"}})"));
  EXPECT_TRUE(no_uid.rejected());
}

TEST(Endpoint, FieldsAndNulls) {
  auto r = parse_modal_endpoint(json::parse(R"({
    "metadata": {"uid": "e-1", "name": "web", "namespace": "ns"},
    "status": {"modal_app_id": "ap-9", "ready_replicas": 3}})"));
  ASSERT_TRUE(r.object);
  EXPECT_EQ(r.object->name, "web");
  EXPECT_EQ(r.object->modal_app_id, "ap-9");
  EXPECT_EQ(*r.object->ready_replicas, 3);

  r = parse_modal_endpoint(json::parse(R"({"metadata": {"uid": "e-2"}, "status": null})"));
  ASSERT_TRUE(r.object);
  EXPECT_FALSE(r.object->ready_replicas);
  r = parse_modal_endpoint(
      json::parse(R"({"metadata": {"uid": "e-3"}, "status": {"ready_replicas": "3"}})"));
  EXPECT_FALSE(r.object->ready_replicas);
  EXPECT_TRUE(parse_modal_endpoint(json::parse("{}")).rejected());
}

TEST(Event, OperatorObjectsAndPodsAreKept) {
  auto r = parse_warning_event(json::parse(R"({
    "metadata": {"uid": "ev-1", "namespace": "ns"}, "type": "Warning", "reason": "ModalError",
    "count": 4,
    "involvedObject": {"apiVersion": "modal-operator.io/v1alpha1", "kind": "ModalJob",
                       "uid": "job-uid-1"}})"));
  ASSERT_TRUE(r.object);
  EXPECT_EQ(r.object->involved_uid, "job-uid-1");  // decides the shard that counts it
  EXPECT_EQ(r.object->reason, "ModalError");
  EXPECT_EQ(r.object->count, 4);
  EXPECT_EQ(r.object->namespace_name, "ns");

  r = parse_warning_event(json::parse(R"({
    "metadata": {"uid": "ev-2"}, "reason": "BackOff", "count": 2, "series": {"count": 9},
    "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": "p-1", "namespace": "jobs"}})"));
  ASSERT_TRUE(r.object);
  EXPECT_EQ(r.object->count, 9);     // series.count wins
  EXPECT_TRUE(r.object->about_pod);  // counted only if the model knows the Pod as offloaded
  EXPECT_EQ(r.object->pod_name, "p-1");
  EXPECT_EQ(r.object->namespace_name, "jobs");

  r = parse_warning_event(json::parse(R"({
    "metadata": {"uid": "ev-3"}, "reason": null, "count": null, "series": null,
    "involvedObject": {"kind": "Pod"}})"));
  ASSERT_TRUE(r.object);
  EXPECT_EQ(r.object->count, 1);
  EXPECT_EQ(r.object->reason, "Unknown");
}

TEST(Event, OtherObjectsAndTypesAreIgnored) {
  auto r = parse_warning_event(json::parse(R"({
    "metadata": {"uid": "ev-4"}, "type": "Warning", "reason": "X",
    "involvedObject": {"apiVersion": "apps/v1", "kind": "Deployment"}})"));
  EXPECT_FALSE(r.object);
  EXPECT_FALSE(r.rejected());
  EXPECT_EQ(r.uid, "ev-4");
  r = parse_warning_event(json::parse(R"({
    "metadata": {"uid": "ev-5"}, "type": "Normal",
    "involvedObject": {"apiVersion": "modal-operator.io/v1alpha1"}})"));
  EXPECT_FALSE(r.object);
  r = parse_warning_event(json::parse(R"({"metadata": {"uid": "ev-6"}, "involvedObject": null})"));
  EXPECT_FALSE(r.object);
  EXPECT_TRUE(parse_warning_event(json::parse(R"({"reason": "x"})")).rejected());
}

TEST(OperatorPod, RestartCount) {
  auto pod = json::parse(R"({"status": {"containerStatuses": [
      {"name": "exporter", "restartCount": 1}, {"name": "modal-operator", "restartCount": 7}]}})");
  EXPECT_EQ(*container_restart_count(pod, "modal-operator"), 7);
  EXPECT_EQ(*container_restart_count(pod, "exporter"), 1);
  EXPECT_FALSE(container_restart_count(pod, "missing"));
  EXPECT_FALSE(container_restart_count(json::parse(R"({"status": null})"), "modal-operator"));
  EXPECT_FALSE(container_restart_count(json::parse(R"({})"), "modal-operator"));
  EXPECT_FALSE(container_restart_count(
      json::parse(R"({"status": {"containerStatuses": [{"name": "modal-operator"}]}})"),
      "modal-operator"));
  EXPECT_FALSE(container_restart_count(json::parse("[]"), "modal-operator"));
}

TEST(ResourceVersion, Extraction) {
  EXPECT_EQ(resource_version(json::parse(R"({"metadata": {"resourceVersion": "12"}})")), "12");
  EXPECT_EQ(resource_version(json::parse(R"({"metadata": {"resourceVersion": 12}})")), "");
  EXPECT_EQ(resource_version(json::parse("null")), "");
}

// --- LIST pages (list_reader.h) ------------------------------------------------------------

// Every element of "items", as ListReader hands it over with `fields`.
std::vector<json> read_items(std::string body, const FieldFilter& fields, ListPage& page,
                             std::string& error) {
  std::vector<json> items;
  ListReader reader;
  error = reader.read(
      body, fields, [&](const json& item) { items.push_back(item); }, page);
  return items;
}

std::vector<json> read_items(const std::string& body, const FieldFilter& fields = {}) {
  ListPage page;
  std::string error;
  auto items = read_items(body, fields, page, error);
  EXPECT_EQ(error, "");
  return items;
}

template <typename T>
void expect_same(const ParseOutcome<T>& filtered, const ParseOutcome<T>& whole,
                 const json& object) {
  EXPECT_EQ(filtered.uid, whole.uid) << object.dump();
  EXPECT_EQ(filtered.error, whole.error) << object.dump();
  EXPECT_EQ(filtered.object, whole.object) << object.dump();
}

// Objects of every kind, whole and partial, null and wrong-typed where the parsers look.
std::vector<json> sample_objects() {
  std::vector<json> objects = {full_modal_job(), offloaded_pod()};
  for (const char* text : {
           R"({"metadata": {"uid": "u-2", "name": "n"}})",
           R"({"metadata": null, "spec": null, "status": null})",
           R"({"metadata": {"uid": "u-3"}, "spec": [1, {"gpu": "T4"}], "status": "x"})",
           R"({"metadata": {"uid": "u-4", "annotations": {"modal-operator.io/offload": "TRUE",
               "modal-operator.io/replicas": " 4 ", "other": {"deep": [1, 2]}}},
               "status": {"containerStatuses": [null, 5, {"state": null},
                 {"state": {"terminated": {"finishedAt": "2024-01-02T03:09:00Z",
                                           "exitCode": 1}}}]}})",
           R"({"metadata": {"uid": "e-1", "namespace": "ml", "name": "api",
               "resourceVersion": "9"}, "spec": {"replicas": 2},
               "status": {"modal_app_id": "ap-9", "ready_replicas": 2.0, "url": "https://x"}})",
           R"({"metadata": {"uid": "ev-1", "namespace": "ns"}, "type": "Warning",
               "reason": "ModalError", "count": 4, "message": "long text",
               "involvedObject": {"apiVersion": "modal-operator.io/v1alpha1", "kind": "ModalJob",
                                  "uid": "job-uid-1", "fieldPath": "spec"}})",
           R"({"metadata": {"uid": "ev-2"}, "reason": "BackOff", "count": 2,
               "series": {"count": 9, "lastObservedTime": "x"},
               "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": "p-1",
                                  "namespace": "jobs"}})",
           R"({"metadata": {"uid": "ev-3"}, "type": "Normal", "involvedObject": {"kind": "Pod"}})",
           R"([1, 2])",
           R"("text")",
       }) {
    objects.push_back(json::parse(text));
  }
  return objects;
}

// A LIST page builds only the members each parser reads (the FieldFilters of parse.h); whatever
// an object holds, every parser sees the filtered object exactly as it sees the whole one.
TEST(ListReader, FilteredObjectsParseLikeWholeOnes) {
  for (const json& object : sample_objects()) {
    const std::string body = json{{"items", json::array({object})}}.dump();
    auto filtered = [&](const FieldFilter& fields) {
      auto items = read_items(body, fields);
      EXPECT_EQ(items.size(), 1u);
      return items.empty() ? json() : items.front();
    };
    expect_same(parse_modal_job(filtered(modal_job_fields())), parse_modal_job(object), object);
    expect_same(parse_offloaded_pod(filtered(offloaded_pod_fields())), parse_offloaded_pod(object),
                object);
    expect_same(parse_modal_endpoint(filtered(modal_endpoint_fields())),
                parse_modal_endpoint(object), object);
    expect_same(parse_warning_event(filtered(warning_event_fields())), parse_warning_event(object),
                object);
    EXPECT_EQ(resource_version(filtered(modal_job_fields())), resource_version(object));
    EXPECT_EQ(filtered(FieldFilter{}), object) << "an empty filter keeps everything";
  }
}

TEST(ListReader, DropsWhatNoParserReads) {
  const auto items =
      read_items(json{{"items", json::array({full_modal_job()})}}.dump(), modal_job_fields());
  ASSERT_EQ(items.size(), 1u);
  const json& job = items.front();
  EXPECT_FALSE(job.contains("apiVersion"));
  EXPECT_FALSE(job["spec"].contains("image"));
  EXPECT_EQ(job["spec"]["gpu"], "A100-80GB:2");
  EXPECT_EQ(job["metadata"]["annotations"].size(), 1u);
}

TEST(ListReader, PageMetadataAndItemsInOrder) {
  ListPage page;
  std::string error;
  const auto items = read_items(R"({"kind": "List", "apiVersion": "v1",
      "items": [{"metadata": {"uid": "a"}}, null, 3, [true], {"metadata": {"uid": "b"}}],
      "extra": {"nested": [{"items": [1]}]},
      "metadata": {"resourceVersion": "42", "continue": "tok", "remainingItemCount": 7}})",
                                FieldFilter{}, page, error);
  EXPECT_EQ(error, "");
  ASSERT_EQ(items.size(), 5u);  // every element, objects or not: the parsers reject the others
  EXPECT_EQ(items[0]["metadata"]["uid"], "a");
  EXPECT_TRUE(items[1].is_null());
  EXPECT_EQ(items[2], 3);
  EXPECT_EQ(items[3], json::array({true}));
  EXPECT_EQ(items[4]["metadata"]["uid"], "b");
  EXPECT_EQ(page.resource_version, "42");
  EXPECT_EQ(page.continue_token, "tok");
}

TEST(ListReader, NamesWhatIsWrongWithAPage) {
  struct Case {
    const char* body;
    const char* error;
  } cases[] = {
      {R"([])", "LIST response is not a JSON object"},
      {R"("items")", "LIST response is not a JSON object"},
      {R"({"items": {"a": 1}})", "LIST response items is not an array"},
      {R"({"items": 5})", "LIST response items is not an array"},
      {R"({"items": [{"metadata": )", "LIST response is not valid JSON"},
      {R"({"items": []} trailing)", "LIST response is not valid JSON"},
      {"", "LIST response is not valid JSON"},
  };
  for (const auto& c : cases) {
    ListPage page;
    std::string error;
    EXPECT_TRUE(read_items(c.body, FieldFilter{}, page, error).empty()) << c.body;
    // Invalid JSON also says what the parser found wrong ("... not valid JSON: <why>").
    EXPECT_EQ(error.substr(0, std::string_view(c.error).size()), c.error) << c.body;
    EXPECT_EQ(error.size() == std::string_view(c.error).size(),
              std::string_view(c.error).find("valid JSON") == std::string_view::npos)
        << error;
  }
  // A page is read whole before any item is handed over: an error at its end hands over none.
  ListPage bad_page;
  std::string bad_error;
  EXPECT_TRUE(read_items(R"({"items": [{"metadata": {"uid": "a"}}, {"metadata": )", FieldFilter{},
                         bad_page, bad_error)
                  .empty());
  EXPECT_NE(bad_error, "");
  ListPage page;
  std::string error;
  EXPECT_TRUE(read_items(R"({"items": null, "metadata": {"resourceVersion": 5}})", FieldFilter{},
                         page, error)
                  .empty());
  EXPECT_EQ(error, "");
  EXPECT_EQ(page.resource_version, "") << "a resourceVersion that is not a string is none";
}

}  // namespace
}  // namespace mx::kube
