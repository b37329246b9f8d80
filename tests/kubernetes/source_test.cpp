// Integration tests of KubernetesSource against the fake API server (tests/fakes/kube): the
// informer protocol (pagination, chunked watches, bookmarks, 410), auth (token rotation,
// 401/403), backoff (500, 429 + Retry-After), broken streams and a server that goes away.
#include "sources/kubernetes/kubernetes_source.h"

#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "fake_kube_api.h"
#include "source_fixture.h"
#include "support/io.h"
#include "support/log_capture.h"
#include "support/recording_sinks.h"
#include "support/temp_dir.h"
#include "test_ca.h"

namespace mx::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr const char* kCrd = "modal-operator.io/v1alpha1";

json modal_job(const std::string& name, const std::string& ns = "default",
               const std::string& phase = "Running") {
  return {{"metadata", {{"name", name}, {"namespace", ns}}},
          {"spec", {{"image", "python:3.11"}, {"gpu", "A100-80GB:2"}, {"replicas", 2}}},
          {"status", {{"phase", phase}, {"modal_app_id", "ap-" + name}}}};
}

json offloaded_pod(const std::string& name, const std::string& ns = "default") {
  return {{"metadata",
           {{"name", name},
            {"namespace", ns},
            {"annotations",
             {{"modal-operator.io/use-modal", "true"}, {"modal-operator.io/gpu", "T4"}}}}},
          {"status", {{"phase", "Running"}}}};
}

json warning_event(const std::string& name, const std::string& reason, int count) {
  return {{"metadata", {{"name", name}, {"namespace", "default"}}},
          {"type", "Warning"},
          {"reason", reason},
          {"count", count},
          {"involvedObject", {{"apiVersion", kCrd}, {"kind", "ModalJob"}, {"name", "x"}}}};
}

// "b" + std::to_string(i) goes through operator+(const char*, std::string&&), which inserts at
// the front of the temporary; GCC 12 at -O2 misjudges that memcpy's bounds (-Wrestrict /
// -Wstringop-overflow, GCC bug 105329) and stops a Release build under -Werror. Appending to the
// prefix builds the same name without that path.
std::string numbered(std::string prefix, int i) {
  prefix += std::to_string(i);
  return prefix;
}

std::string uid_of(const json& object) {
  return object["metadata"]["uid"].get<std::string>();
}

class SourceTest : public KubeSourceTestBase {
 protected:
  void SetUp() override {
    api.start();
    config.kubeconfig = api.write_kubeconfig(dir.path());
  }

  void TearDown() override {
    stop_source();
    api.stop();
  }

  void start() {
    source = std::make_unique<KubernetesSource>(io, config, backoff, sink, sink);
    source->set_operator_pod("", "");
    if (in_cluster) source->set_in_cluster_paths(*in_cluster);
    source->start();
  }

  // Waits for the initial sync and for every watch to be open on the server.
  void start_and_sync() {
    start();
    ASSERT_TRUE(run_until(io, [&] { return !sink.successes.empty(); })) << logs.all();
    ASSERT_TRUE(run_until(io, [&] { return api.open_watch_count() == informer_count(); }))
        << api.open_watch_count();
  }

  std::size_t informer_count() const {
    // ModalJobs, offloaded Pods, ModalEndpoints (+ Warning Events) per namespace.
    const std::size_t per_ns = config.watch_events ? 4 : 3;
    return per_ns * std::max<std::size_t>(1, config.namespaces.size());
  }

  std::size_t count_requests(const std::string& needle) const {
    std::size_t n = 0;
    for (const auto& r : api.requests()) n += r.find(needle) != std::string::npos ? 1 : 0;
    return n;
  }

  FakeKubeApi api;
  TempDir dir;
  std::optional<mx::kube::InClusterPaths> in_cluster;
};

TEST_F(SourceTest, InitialSyncFeedsEveryKind) {
  const auto job = api.upsert(kCrd, "modaljobs", modal_job("train"));
  const auto pod = api.upsert("v1", "pods", offloaded_pod("offloaded"));
  api.upsert("v1", "pods", json{{"metadata", {{"name", "ordinary"}, {"namespace", "default"}}}});
  const auto endpoint =
      api.upsert(kCrd, "modalendpoints",
                 json{{"metadata", {{"name", "web"}, {"namespace", "default"}}},
                      {"status", {{"ready_replicas", 2}, {"modal_app_id", "ap-web"}}}});
  const auto event = api.upsert("v1", "events", warning_event("ev", "ModalApiError", 3));
  json other_event = warning_event("other", "BackOff", 1);
  other_event["involvedObject"] = {{"apiVersion", "apps/v1"}, {"kind", "Deployment"}};
  api.upsert("v1", "events", other_event);
  json normal_event = warning_event("normal", "Started", 1);
  normal_event["type"] = "Normal";
  api.upsert("v1", "events", normal_event);

  start_and_sync();
  EXPECT_EQ(sink.successes.size(), 1u);
  EXPECT_EQ(sink.failures, 0);
  ASSERT_EQ(sink.jobs.size(), 2u);
  const JobObject& j = sink.jobs.at(uid_of(job));
  EXPECT_EQ(j.kind, "ModalJob");
  EXPECT_EQ(j.name, "train");
  EXPECT_EQ(j.gpu_type, "A100-80GB");
  EXPECT_EQ(j.gpu_count, 2);
  EXPECT_EQ(j.replicas, 2);
  EXPECT_EQ(j.phase, "Running");
  EXPECT_TRUE(j.created_at.has_value());  // from metadata.creationTimestamp
  EXPECT_EQ(sink.jobs.at(uid_of(pod)).kind, "Pod");
  EXPECT_EQ(sink.jobs.at(uid_of(pod)).gpu_type, "T4");
  EXPECT_EQ(sink.endpoints.at(uid_of(endpoint)).ready_replicas, 2);
  ASSERT_EQ(sink.events.size(), 1u);
  EXPECT_EQ(sink.events.at(uid_of(event)).reason, "ModalApiError");
  EXPECT_EQ(sink.events.at(uid_of(event)).count, 3);

  // The protocol: paginated LIST, then WATCH with bookmarks from the list's resourceVersion.
  EXPECT_EQ(count_requests("GET /apis/modal-operator.io/v1alpha1/modaljobs?limit=500"), 1u);
  EXPECT_EQ(count_requests("GET /api/v1/events?limit=500&fieldSelector=type%3DWarning"), 1u);
  EXPECT_EQ(count_requests("allowWatchBookmarks=true&timeoutSeconds=60"), informer_count());
  EXPECT_EQ(count_requests("/modaljobs?watch=1&resourceVersion="), 1u);
}

TEST_F(SourceTest, WatchDeliversChangesAndDeletes) {
  const auto keep = api.upsert(kCrd, "modaljobs", modal_job("keep"));
  start_and_sync();

  auto added = api.upsert(kCrd, "modaljobs", modal_job("added", "default", "Pending"));
  ASSERT_TRUE(run_until(io, [&] { return sink.jobs.count(uid_of(added)) == 1; }));
  EXPECT_EQ(sink.jobs.at(uid_of(added)).phase, "Pending");

  api.upsert(kCrd, "modaljobs", modal_job("added", "default", "Succeeded"));
  ASSERT_TRUE(run_until(io, [&] { return sink.jobs.at(uid_of(added)).phase == "Succeeded"; }));

  api.remove(kCrd, "modaljobs", "default", "added");
  ASSERT_TRUE(run_until(io, [&] { return sink.deleted_job(uid_of(added)); }));
  EXPECT_EQ(sink.jobs.count(uid_of(keep)), 1u);

  // A Pod that stops being offloaded stops being a job.
  auto pod = api.upsert("v1", "pods", offloaded_pod("p"));
  ASSERT_TRUE(run_until(io, [&] { return sink.jobs.count(uid_of(pod)) == 1; }));
  pod["metadata"]["annotations"] = json::object();
  api.upsert("v1", "pods", pod);
  ASSERT_TRUE(run_until(io, [&] { return sink.deleted_job(uid_of(pod)); }));
  EXPECT_EQ(sink.jobs.count(uid_of(pod)), 0u);

  // Events: updates in place, then deletion.
  auto ev = api.upsert("v1", "events", warning_event("e1", "Failed", 1));
  ASSERT_TRUE(run_until(io, [&] { return sink.events.count(uid_of(ev)) == 1; }));
  api.upsert("v1", "events", warning_event("e1", "Failed", 5));
  ASSERT_TRUE(run_until(io, [&] { return sink.events.at(uid_of(ev)).count == 5; }));
  api.remove("v1", "events", "default", "e1");
  ASSERT_TRUE(run_until(io, [&] { return sink.events.count(uid_of(ev)) == 0; }));
  EXPECT_EQ(sink.failures, 0);
  EXPECT_TRUE(sink.errors.empty());
}

TEST_F(SourceTest, PaginatesOverMoreThanAThousandObjects) {
  api.set_max_page_size(500);
  std::set<std::string> uids;
  for (int i = 0; i < 1203; ++i) {
    uids.insert(uid_of(api.upsert(kCrd, "modaljobs", modal_job(numbered("job-", i)))));
  }
  start_and_sync();
  EXPECT_EQ(sink.jobs.size(), 1203u);
  for (const auto& uid : uids) EXPECT_EQ(sink.jobs.count(uid), 1u);
  EXPECT_EQ(count_requests("/modaljobs?limit=500&continue="), 2u);  // 500 + 500 + 203
  EXPECT_EQ(sink.failures, 0);
}

// A continue token that expires between pages (HTTP 410) starts the list over; what the
// abandoned pages returned is neither lost nor reported deleted.
TEST_F(SourceTest, ExpiredContinueTokenStartsTheListOver) {
  api.set_max_page_size(2);
  std::set<std::string> uids;
  for (int i = 0; i < 5; ++i) {
    uids.insert(uid_of(api.upsert(kCrd, "modaljobs", modal_job(numbered("job-", i)))));
  }
  api.inject_failure(410, 1, "modaljobs?limit=500&continue=");
  start_and_sync();
  EXPECT_EQ(sink.jobs.size(), 5u);
  for (const auto& uid : uids) EXPECT_EQ(sink.jobs.count(uid), 1u);
  EXPECT_TRUE(sink.deleted_jobs.empty());
  // The first page twice, then the two pages after it.
  EXPECT_EQ(count_requests("/modaljobs?limit=500"), 5u);
  EXPECT_EQ(sink.failures, 0);
}

TEST_F(SourceTest, WatchEventsSplitAcrossChunksAndBatchedInOne) {
  start_and_sync();
  api.set_watch_chunk_size(7);
  json big = modal_job("big");
  big["metadata"]["annotations"] = {{"note", std::string(5000, 'x')},
                                    {"modal-operator.io/telemetry-url", "http://t/metrics"}};
  const auto stored = api.upsert(kCrd, "modaljobs", big);
  ASSERT_TRUE(run_until(io, [&] { return sink.jobs.count(uid_of(stored)) == 1; }));
  EXPECT_EQ(sink.jobs.at(uid_of(stored)).telemetry_url, "http://t/metrics");

  // Many events in one burst: with a large chunk size several share one chunk.
  api.set_watch_chunk_size(1 << 20);
  std::vector<std::string> burst;
  for (int i = 0; i < 50; ++i) {
    burst.push_back(uid_of(api.upsert(kCrd, "modaljobs", modal_job(numbered("b", i)))));
  }
  ASSERT_TRUE(run_until(io, [&] {
    return std::all_of(burst.begin(), burst.end(),
                       [&](const std::string& u) { return sink.jobs.count(u) == 1; });
  }));
  EXPECT_TRUE(sink.errors.empty());
  EXPECT_EQ(count_requests("/modaljobs?limit="), 1u);  // no re-list was needed
}

TEST_F(SourceTest, BookmarkOnlyAdvancesResourceVersion) {
  start_and_sync();
  const int upserts_before = sink.upserts;
  // Something else changes (a resource we do not watch), so the bookmark rv is new.
  api.upsert("v1", "namespaces", json{{"metadata", {{"name", "ns-x"}}}});
  const std::string rv = std::to_string(api.resource_version());
  api.send_bookmarks();
  run_for(io, 200ms);
  EXPECT_EQ(sink.upserts, upserts_before);
  // The next watch starts from the bookmark's resourceVersion.
  api.end_open_watches();
  ASSERT_TRUE(run_until(io, [&] {
    return count_requests("/modaljobs?watch=1&resourceVersion=" + rv + "&") == 1;
  })) << rv;
  EXPECT_TRUE(sink.errors.empty());
  EXPECT_EQ(count_requests("/modaljobs?limit="), 1u);
}

// A watch that ended cleanly is resumed; when its resourceVersion is too old (ERROR 410), the
// re-list picks up what changed in the gap and reports what vanished as deleted.
TEST_F(SourceTest, ExpiredWatchRelistsAndReconcilesTheGap) {
  const auto doomed = api.upsert(kCrd, "modaljobs", modal_job("doomed"));
  const auto stays = api.upsert(kCrd, "modaljobs", modal_job("stays"));
  start_and_sync();
  ASSERT_EQ(sink.jobs.size(), 2u);

  // The client only runs inside run_until, so nothing watches between these calls.
  api.end_open_watches();
  while (api.open_watch_count() != 0) std::this_thread::sleep_for(1ms);
  const auto born = api.upsert(kCrd, "modaljobs", modal_job("born"));
  api.remove(kCrd, "modaljobs", "default", "doomed");
  api.compact();

  ASSERT_TRUE(run_until(io, [&] {
    return sink.jobs.count(uid_of(born)) == 1 && sink.deleted_job(uid_of(doomed));
  })) << logs.all();
  EXPECT_EQ(sink.jobs.count(uid_of(stays)), 1u);
  EXPECT_EQ(count_requests("/modaljobs?limit="), 2u);
  // An expired watch is routine, not an error.
  EXPECT_EQ(sink.failures, 0);
  EXPECT_TRUE(sink.errors.empty());
  EXPECT_GE(sink.successes.size(), 2u);
}

TEST_F(SourceTest, Http410OnWatchRelists) {
  start_and_sync();
  api.end_open_watches();
  while (api.open_watch_count() != 0) std::this_thread::sleep_for(1ms);
  api.inject_failure(410, 1, "modalendpoints?watch=1");
  const auto ep = api.upsert(kCrd, "modalendpoints",
                             json{{"metadata", {{"name", "e"}, {"namespace", "default"}}}});
  ASSERT_TRUE(run_until(io, [&] { return sink.endpoints.count(uid_of(ep)) == 1; }));
  EXPECT_EQ(count_requests("/modalendpoints?limit="), 2u);
  EXPECT_TRUE(sink.errors.empty());
}

TEST_F(SourceTest, ErrorEventOpensAReList) {
  start_and_sync();
  api.expire_open_watches();  // ERROR 410 on every watch
  ASSERT_TRUE(run_until(io, [&] { return count_requests("?limit=") >= 2 * informer_count(); }));
  ASSERT_TRUE(run_until(io, [&] { return api.open_watch_count() == informer_count(); }));
  EXPECT_TRUE(sink.errors.empty());

  // A non-410 ERROR event is an error, and also ends in a re-list.
  const auto lists = count_requests("/modaljobs?limit=");
  api.send_raw_watch_line(
      R"({"type":"ERROR","object":{"kind":"Status","code":500,"message":"etcd is sad"}})");
  ASSERT_TRUE(run_until(io, [&] { return count_requests("/modaljobs?limit=") > lists; }));
  EXPECT_GE(sink.error_count("kubernetes_api/http_5xx"), 1);
  EXPECT_GE(logs.count("etcd is sad"), 1);
}

TEST_F(SourceTest, TokenRotationRereadsTheTokenFileOn401) {
  in_cluster = mx::kube::InClusterPaths{};
  in_cluster->token_file = dir.write("token", "test-token\n");
  in_cluster->ca_file = dir.write("ca.crt", api.ca_pem());
  in_cluster->service_host = "127.0.0.1";
  in_cluster->service_port = std::to_string(api.port());
  config.kubeconfig.clear();
  config.token_reload_interval = std::chrono::hours(1);  // only a 401 triggers the re-read
  start_and_sync();

  api.set_token("rotated-token");
  dir.write("token", "rotated-token\n");
  api.end_open_watches();
  const auto job = api.upsert(kCrd, "modaljobs", modal_job("after-rotation"));
  ASSERT_TRUE(run_until(io, [&] { return sink.jobs.count(uid_of(job)) == 1; })) << logs.all();
  ASSERT_TRUE(run_until(io, [&] { return api.open_watch_count() == informer_count(); }));
  EXPECT_GE(sink.error_count("kubernetes_api/auth"), 1);
  EXPECT_EQ(sink.failures, 0);  // recovered at once: never reported down
  EXPECT_EQ(logs.count("rotated-token"), 0);
  EXPECT_EQ(logs.count("test-token"), 0);
}

TEST_F(SourceTest, TokenFileIsReloadedPeriodically) {
  in_cluster = mx::kube::InClusterPaths{};
  in_cluster->token_file = dir.write("token", "test-token");
  in_cluster->ca_file = dir.write("ca.crt", api.ca_pem());
  in_cluster->service_host = "127.0.0.1";
  in_cluster->service_port = std::to_string(api.port());
  config.kubeconfig.clear();
  config.token_reload_interval = 0ms;  // every request reads the file
  start_and_sync();

  dir.write("token", "next-token");
  api.set_token("next-token");
  api.end_open_watches();
  const auto job = api.upsert(kCrd, "modaljobs", modal_job("x"));
  ASSERT_TRUE(run_until(io, [&] { return sink.jobs.count(uid_of(job)) == 1; }));
  EXPECT_EQ(sink.error_count("kubernetes_api/auth"), 0);
}

TEST_F(SourceTest, UnauthorizedIsLoggedOncePerAttemptAndRetriedSlowly) {
  api.set_token("not-what-the-kubeconfig-says");
  start();
  ASSERT_TRUE(run_until(io, [&] { return count_requests("/modaljobs?limit=") >= 4; }));
  run_for(io, 300ms);
  EXPECT_TRUE(sink.successes.empty());
  EXPECT_GE(sink.failures, 4);
  const int attempts = static_cast<int>(count_requests("/modaljobs?limit="));
  const int lines = logs.count("credentials for list on modal-operator.io/modaljobs (401)");
  EXPECT_GE(lines, attempts - 1);  // the last attempt may still be in flight
  EXPECT_LE(lines, attempts);
  // Backoff, not a tight loop: attempts are spaced 50ms, 100ms, ... 500ms apart.
  EXPECT_LT(attempts, 40);
  EXPECT_GE(sink.error_count("kubernetes_api/auth"), 4);
  EXPECT_EQ(logs.count("test-token"), 0);

  api.set_token("test-token");
  ASSERT_TRUE(run_until(io, [&] { return !sink.successes.empty(); }));
}

TEST_F(SourceTest, ForbiddenNamesVerbAndResource) {
  api.inject_failure(403, 3, "/modaljobs?limit=");
  start();
  ASSERT_TRUE(run_until(io, [&] { return !sink.successes.empty(); })) << logs.all();
  EXPECT_EQ(logs.count("Kubernetes API denied list on modal-operator.io/modaljobs (403): grant "
                       "get/list/watch"),
            3);
  EXPECT_EQ(sink.error_count("kubernetes_api/auth"), 3);
  EXPECT_EQ(sink.failures, 3);

  api.inject_failure(403, 2, "/pods?watch=1");
  api.end_open_watches();
  ASSERT_TRUE(run_until(io, [&] {
    return logs.count("Kubernetes API denied watch on pods (403)") == 2;
  })) << logs.all();
  ASSERT_TRUE(run_until(io, [&] { return api.open_watch_count() == informer_count(); }));
}

TEST_F(SourceTest, MissingCrdIsNamedAndTheOtherKindsStillFlow) {
  api.unregister_resource(kCrd, "modaljobs");  // the operator's CRDs are not installed yet
  api.upsert("v1", "pods", offloaded_pod("offloaded"));
  start();
  ASSERT_TRUE(run_until(io, [&] {
    return logs.count(
               "Kubernetes API has no modal-operator.io/modaljobs (404): are the "
               "modal-operator CRDs installed?") >= 2;
  })) << logs.all();
  EXPECT_EQ(sink.jobs.size(), 1u);      // offloaded Pods are watched all the same
  EXPECT_TRUE(sink.successes.empty());  // not ready: one kind has never been listed
  EXPECT_GE(sink.failures, 2);

  api.register_resource(kCrd, "modaljobs", "ModalJob");  // the CRDs arrive
  api.upsert(kCrd, "modaljobs", modal_job("train"));
  ASSERT_TRUE(run_until(io, [&] { return !sink.successes.empty(); })) << logs.all();
  EXPECT_EQ(sink.jobs.size(), 2u);
}

TEST_F(SourceTest, ServerErrorsBackOffAndRecover) {
  api.inject_failure(500, 2, "/modalendpoints?limit=");
  start();
  ASSERT_TRUE(run_until(io, [&] { return !sink.successes.empty(); })) << logs.all();
  EXPECT_EQ(sink.error_count("kubernetes_api/http_5xx"), 2);
  EXPECT_EQ(sink.failures, 2);
  EXPECT_EQ(count_requests("/modalendpoints?limit="), 3u);
}

TEST_F(SourceTest, TooManyRequestsHonoursRetryAfter) {
  backoff.max = 5s;  // Retry-After beyond the cap would be cut to the cap
  api.inject_failure(429, 1, "/modalendpoints?limit=", 1);
  start();
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(run_until(io, [&] { return !sink.successes.empty(); })) << logs.all();
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 900ms);  // waited at least Retry-After
  EXPECT_EQ(sink.error_count("kubernetes_api/http_4xx"), 1);
  EXPECT_EQ(logs.count("retry_in=1s"), 1) << logs.all();
}

TEST_F(SourceTest, NonJsonLineRestartsTheStream) {
  start_and_sync();
  const auto successes = sink.successes.size();
  api.send_raw_watch_line("this is <not> json");
  ASSERT_TRUE(run_until(io, [&] {
    return sink.error_count("kubernetes_api/parse") >= static_cast<int>(informer_count());
  }));
  ASSERT_TRUE(run_until(io, [&] { return sink.successes.size() > successes; }));
  ASSERT_TRUE(run_until(io, [&] { return api.open_watch_count() == informer_count(); }));
  const auto job = api.upsert(kCrd, "modaljobs", modal_job("still-works"));
  ASSERT_TRUE(run_until(io, [&] { return sink.jobs.count(uid_of(job)) == 1; }));
}

TEST_F(SourceTest, OversizedEventIsAParseErrorNotACrash) {
  config.max_event_bytes = 4096;
  start_and_sync();
  json huge = modal_job("huge");
  huge["metadata"]["annotations"] = {{"blob", std::string(20000, 'y')}};
  const auto stored = api.upsert(kCrd, "modaljobs", huge);
  ASSERT_TRUE(run_until(io, [&] { return sink.error_count("kubernetes_api/parse") >= 1; }));
  // The re-list (not bounded by the watch line limit) still brings the object in.
  ASSERT_TRUE(run_until(io, [&] { return sink.jobs.count(uid_of(stored)) == 1; }));
}

TEST_F(SourceTest, ReportsFailureWhileTheServerIsDownAndRecovers) {
  start_and_sync();
  api.stop();
  ASSERT_TRUE(run_until(io, [&] { return sink.failures >= 3; }));
  EXPECT_GE(sink.error_count("kubernetes_api/connection"), 1);
  const auto successes = sink.successes.size();
  api.start();  // same port, same store
  const auto job = api.upsert(kCrd, "modaljobs", modal_job("after-outage"));
  ASSERT_TRUE(run_until(io, [&] { return sink.jobs.count(uid_of(job)) == 1; })) << logs.all();
  ASSERT_TRUE(run_until(io, [&] { return sink.successes.size() > successes; }));
}

TEST_F(SourceTest, NoClusterConfiguredKeepsRetrying) {
  config.kubeconfig.clear();
  in_cluster = mx::kube::InClusterPaths{};
  in_cluster->service_host = "";
  in_cluster->service_port = "";
  start();
  ASSERT_TRUE(run_until(io, [&] { return sink.failures >= 3; }));
  EXPECT_GE(logs.count("KUBERNETES_SERVICE_HOST"), 3);
  EXPECT_TRUE(sink.successes.empty());
}

TEST_F(SourceTest, BadCertificateAuthorityFailsVerification) {
  const auto other = mx::testing::kube::make_test_tls();
  const std::string base64_ca = [&] {
    // Reuse the fake's kubeconfig, swapping its CA for an unrelated one.
    std::ifstream in(config.kubeconfig);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }();
  std::string text = base64_ca;
  const auto pos = text.find("certificate-authority-data:");
  ASSERT_NE(pos, std::string::npos);
  const auto end = text.find('\n', pos);
  std::string ca_path = dir.write("other-ca.crt", other.ca_pem);
  text.replace(pos, end - pos, "certificate-authority: " + ca_path);
  config.kubeconfig = dir.write("bad-kubeconfig", text);
  start();
  ASSERT_TRUE(run_until(io, [&] { return sink.error_count("kubernetes_api/connection") >= 5; }));
  EXPECT_TRUE(sink.successes.empty());
  EXPECT_GE(logs.count("certificate verify failed"), 1) << logs.all();
}

TEST_F(SourceTest, VerifiesDnsNamesToo) {
  std::ifstream in(config.kubeconfig);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  const std::string ip_url = "https://127.0.0.1:";
  text.replace(text.find(ip_url), ip_url.size(), "https://localhost:");
  config.kubeconfig = dir.write("dns-kubeconfig", text);
  start_and_sync();
  EXPECT_EQ(sink.failures, 0);
  source->stop();

  // The certificate does not name this host: verification must fail.
  const auto pos = text.find("    server:");
  text.insert(pos, "    tls-server-name: wrong.example\n");
  config.kubeconfig = dir.write("wrong-kubeconfig", text);
  RecordingKubeSink other_sink;
  KubernetesSource wrong(io, config, backoff, other_sink, other_sink);
  wrong.set_operator_pod("", "");
  wrong.start();
  ASSERT_TRUE(
      run_until(io, [&] { return other_sink.error_count("kubernetes_api/connection") >= 3; }));
  EXPECT_TRUE(other_sink.successes.empty());
  wrong.stop();
}

TEST_F(SourceTest, OperatorPodRestartCount) {
  json op = {
      {"metadata", {{"name", "operator-0"}, {"namespace", "modal-system"}}},
      {"status",
       {{"containerStatuses", json::array({{{"name", "exporter"}, {"restartCount", 0}},
                                           {{"name", "modal-operator"}, {"restartCount", 3}}})}}}};
  api.upsert("v1", "pods", op);
  config.operator_pod_interval = 50ms;
  source = std::make_unique<KubernetesSource>(io, config, backoff, sink, sink);
  source->set_operator_pod("modal-system", "operator-0");
  source->start();
  ASSERT_TRUE(run_until(io, [&] { return !sink.restarts.empty(); }));
  EXPECT_EQ(sink.restarts.back(), 3);
  EXPECT_GE(count_requests("GET /api/v1/namespaces/modal-system/pods/operator-0"), 1u);

  op["status"]["containerStatuses"][1]["restartCount"] = 4;
  api.upsert("v1", "pods", op);
  ASSERT_TRUE(run_until(io, [&] { return sink.restarts.back() == 4; }));

  api.remove("v1", "pods", "modal-system", "operator-0");
  ASSERT_TRUE(run_until(io, [&] { return !sink.restarts.back().has_value(); }));

  api.inject_failure(403, 1, "/pods/operator-0");
  ASSERT_TRUE(run_until(io, [&] { return logs.count("denied get on pods (403)") == 1; }));
}

TEST_F(SourceTest, WatchesOnlyConfiguredNamespaces) {
  config.namespaces = {"team-a", "team-b"};
  const auto a = api.upsert(kCrd, "modaljobs", modal_job("a", "team-a"));
  const auto b = api.upsert(kCrd, "modaljobs", modal_job("b", "team-b"));
  api.upsert(kCrd, "modaljobs", modal_job("c", "team-c"));
  start_and_sync();
  EXPECT_EQ(sink.jobs.size(), 2u);
  EXPECT_EQ(sink.jobs.count(uid_of(a)), 1u);
  EXPECT_EQ(sink.jobs.count(uid_of(b)), 1u);
  EXPECT_EQ(count_requests("/namespaces/team-a/modaljobs?limit="), 1u);
  EXPECT_EQ(count_requests("GET /apis/modal-operator.io/v1alpha1/modaljobs"), 0u);
}

TEST_F(SourceTest, PodSelectorsGoToTheServer) {
  config.pod_label_selector = "app=train";
  config.watch_events = false;
  json labelled = offloaded_pod("labelled");
  labelled["metadata"]["labels"] = {{"app", "train"}};
  const auto in = api.upsert("v1", "pods", labelled);
  const auto out = api.upsert("v1", "pods", offloaded_pod("unlabelled"));
  start_and_sync();
  EXPECT_EQ(sink.jobs.count(uid_of(in)), 1u);
  EXPECT_EQ(sink.jobs.count(uid_of(out)), 0u);
  EXPECT_EQ(count_requests("/pods?limit=500&labelSelector=app%3Dtrain"), 1u);
  EXPECT_EQ(count_requests("/events"), 0u);
}

TEST_F(SourceTest, PeriodicResyncReListsAndStaysUp) {
  config.resync_interval = 200ms;
  start_and_sync();
  ASSERT_TRUE(run_until(io, [&] { return count_requests("/modaljobs?limit=") >= 3; }));
  EXPECT_GE(sink.successes.size(), 2u);
  EXPECT_EQ(sink.failures, 0);
  EXPECT_TRUE(sink.errors.empty());
}

TEST_F(SourceTest, StopCancelsEverythingAndDestroysSafely) {
  start_and_sync();
  const int upserts = sink.upserts;
  source->stop();
  source.reset();
  // The server sees every watch go away; running the io_context afterwards touches nothing freed.
  ASSERT_TRUE(run_until(io, [&] { return api.open_watch_count() == 0; }));
  api.upsert(kCrd, "modaljobs", modal_job("after-stop"));
  run_for(io, 100ms);
  EXPECT_EQ(sink.upserts, upserts);
}

}  // namespace
}  // namespace mx::testing
