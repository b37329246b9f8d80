#include "fake_kube_api.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <gtest/gtest.h>

#include "test_client.h"

namespace mx::testing {
namespace {

using client::Connection;
using client::eventually;
using client::WatchStream;
using nlohmann::json;

constexpr const char* kCrd = "modal-operator.io/v1alpha1";

json pod(const std::string& ns, const std::string& name, json labels = json::object(),
         const std::string& phase = "Running") {
  return {{"metadata", {{"namespace", ns}, {"name", name}, {"labels", labels}}},
          {"status", {{"phase", phase}}}};
}

class FakeKubeApiTest : public ::testing::Test {
 protected:
  void SetUp() override { api_.start(); }

  Connection connect() { return Connection(api_.port(), api_.ca_pem()); }
  client::Response get(const std::string& target) {
    return connect().request(target, "test-token");
  }
  std::unique_ptr<WatchStream> watch(const std::string& target) {
    return std::make_unique<WatchStream>(api_.port(), api_.ca_pem(), target, "test-token");
  }
  bool wait_watches(std::size_t n) {
    return eventually([&] { return api_.open_watch_count() == n; });
  }

  FakeKubeApi api_;
};

TEST_F(FakeKubeApiTest, TlsVerifiesAgainstTheRuntimeCaForIpAndLocalhost) {
  EXPECT_EQ(api_.url(), "https://127.0.0.1:" + std::to_string(api_.port()));
  EXPECT_NE(api_.ca_pem().find("BEGIN CERTIFICATE"), std::string::npos);
  EXPECT_EQ(get("/api/v1/pods").status, 200);
  Connection by_name(api_.port(), api_.ca_pem(), "localhost");
  EXPECT_EQ(by_name.request("/api/v1/pods", "test-token").status, 200);

  // The certificate is not valid for other names, and not trusted without the CA.
  EXPECT_THROW(Connection(api_.port(), api_.ca_pem(), "kubernetes.example"),
               boost::system::system_error);
  EXPECT_THROW(Connection(api_.port(), api_.ca_pem(), "127.0.0.2"), boost::system::system_error);
  FakeKubeApi other;
  EXPECT_THROW(Connection(api_.port(), other.ca_pem()), boost::system::system_error);
}

TEST_F(FakeKubeApiTest, RequiresTheBearerTokenAndHonoursRotation) {
  Connection conn = connect();
  auto missing = conn.request("/api/v1/pods", std::nullopt);
  EXPECT_EQ(missing.status, 401);
  EXPECT_EQ(missing.json()["kind"], "Status");
  EXPECT_EQ(missing.json()["code"], 401);
  EXPECT_EQ(missing.json()["reason"], "Unauthorized");
  EXPECT_EQ(conn.request("/api/v1/pods", "wrong").status, 401);
  EXPECT_EQ(conn.request("/api/v1/pods", "test-token").status, 200);

  api_.set_token("rotated");
  EXPECT_EQ(conn.request("/api/v1/pods", "test-token").status, 401);
  EXPECT_EQ(conn.request("/api/v1/pods", "rotated").status, 200);
  // The secret never appears in what the server says back.
  EXPECT_EQ(conn.request("/api/v1/pods", "test-token").body.find("rotated"), std::string::npos);
}

TEST_F(FakeKubeApiTest, KeepsConnectionsAliveAndRecordsRequests) {
  Connection conn = connect();
  for (int i = 0; i < 3; ++i) {
    auto res = conn.request("/apis/modal-operator.io/v1alpha1/modaljobs?limit=500", "test-token");
    ASSERT_EQ(res.status, 200);
    EXPECT_EQ(res.json()["kind"], "ModalJobList");
    EXPECT_EQ(res.json()["apiVersion"], kCrd);
  }
  auto seen = api_.requests();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0], "GET /apis/modal-operator.io/v1alpha1/modaljobs?limit=500");
}

TEST_F(FakeKubeApiTest, UnknownPathsAre404AndOtherMethods405) {
  Connection conn = connect();
  auto missing = conn.request("/api/v1/secrets", "test-token");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.json()["reason"], "NotFound");
  EXPECT_EQ(conn.request("/apis/other.io/v1/things", "test-token").status, 404);
  EXPECT_EQ(conn.request("/nonsense", "test-token").status, 404);
  auto post = conn.request("/api/v1/pods", "test-token", client::http::verb::post);
  EXPECT_EQ(post.status, 405);
  EXPECT_EQ(post.json()["code"], 405);

  api_.unregister_resource(kCrd, "modaljobs");
  EXPECT_EQ(conn.request("/apis/modal-operator.io/v1alpha1/modaljobs", "test-token").status, 404);
}

TEST_F(FakeKubeApiTest, UpsertFillsMetadataAndGetServesOneObject) {
  json stored = api_.upsert("v1", "pods", pod("ns1", "p1"));
  EXPECT_FALSE(stored["metadata"]["uid"].get<std::string>().empty());
  EXPECT_FALSE(stored["metadata"]["creationTimestamp"].get<std::string>().empty());
  EXPECT_EQ(stored["kind"], "Pod");
  uint64_t rv1 = std::stoull(stored["metadata"]["resourceVersion"].get<std::string>());
  json updated = api_.upsert("v1", "pods", pod("ns1", "p1", json::object(), "Succeeded"));
  EXPECT_EQ(updated["metadata"]["uid"], stored["metadata"]["uid"]);
  EXPECT_GT(std::stoull(updated["metadata"]["resourceVersion"].get<std::string>()), rv1);

  auto res = get("/api/v1/namespaces/ns1/pods/p1");
  ASSERT_EQ(res.status, 200);
  EXPECT_EQ(res.json()["status"]["phase"], "Succeeded");
  auto missing = get("/api/v1/namespaces/ns1/pods/nope");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.json()["reason"], "NotFound");
  EXPECT_EQ(missing.json()["details"]["name"], "nope");

  EXPECT_TRUE(api_.remove("v1", "pods", "ns1", "p1"));
  EXPECT_FALSE(api_.remove("v1", "pods", "ns1", "p1"));
  EXPECT_FALSE(api_.get("v1", "pods", "ns1", "p1").has_value());
  EXPECT_THROW(api_.upsert("v1", "pods", json{{"metadata", json::object()}}),
               std::invalid_argument);
}

TEST_F(FakeKubeApiTest, PaginatesAConsistentSnapshotOver1200Objects) {
  for (int i = 0; i < 1200; ++i) {
    api_.upsert("v1", "pods", pod(i % 2 ? "odd" : "even", "pod-" + std::to_string(i)));
  }
  Connection conn = connect();
  std::set<std::string> seen;
  std::string cont;
  std::string list_rv;
  std::vector<std::size_t> page_sizes;
  for (int page = 0; page < 10; ++page) {
    std::string target = "/api/v1/pods?limit=500";
    if (!cont.empty()) target += "&continue=" + cont;
    auto res = conn.request(target, "test-token");
    ASSERT_EQ(res.status, 200) << res.body;
    json body = res.json();
    EXPECT_EQ(body["kind"], "PodList");
    if (page == 0) {
      list_rv = body["metadata"]["resourceVersion"];
      // Changes during pagination must not leak into later pages of the same list.
      api_.upsert("v1", "pods", pod("even", "zzz-added-later"));
      api_.remove("v1", "pods", "odd", "pod-999");
    }
    EXPECT_EQ(body["metadata"]["resourceVersion"], list_rv);
    page_sizes.push_back(body["items"].size());
    for (const auto& item : body["items"]) {
      EXPECT_FALSE(item.contains("kind"));  // core list items carry no kind, as on a real server
      seen.insert(item["metadata"]["namespace"].get<std::string>() + "/" +
                  item["metadata"]["name"].get<std::string>());
    }
    cont = body["metadata"].value("continue", "");
    if (cont.empty()) break;
    EXPECT_GT(body["metadata"]["remainingItemCount"].get<int>(), 0);
  }
  EXPECT_EQ(page_sizes, (std::vector<std::size_t>{500, 500, 200}));
  EXPECT_EQ(seen.size(), 1200u);
  EXPECT_TRUE(seen.count("odd/pod-999"));
  EXPECT_FALSE(seen.count("even/zzz-added-later"));

  // A fresh list sees the changes.
  auto fresh = conn.request("/api/v1/namespaces/even/pods", "test-token").json();
  EXPECT_EQ(fresh["items"].size(), 601u);

  // The server's cap wins over a larger client limit.
  api_.set_max_page_size(100);
  auto capped = conn.request("/api/v1/pods?limit=500", "test-token").json();
  EXPECT_EQ(capped["items"].size(), 100u);
}

TEST_F(FakeKubeApiTest, ContinueTokenFromBeforeCompactionGets410) {
  for (int i = 0; i < 5; ++i) api_.upsert(kCrd, "modaljobs", pod("ns", "job-" + std::to_string(i)));
  Connection conn = connect();
  auto first =
      conn.request("/apis/modal-operator.io/v1alpha1/modaljobs?limit=2", "test-token").json();
  ASSERT_EQ(first["items"].size(), 2u);
  EXPECT_EQ(first["items"][0]["kind"], "ModalJob");  // custom resources keep kind in lists
  std::string cont = first["metadata"]["continue"];
  api_.compact();
  auto expired = conn.request("/apis/modal-operator.io/v1alpha1/modaljobs?limit=2&continue=" + cont,
                              "test-token");
  EXPECT_EQ(expired.status, 410);
  EXPECT_EQ(expired.json()["reason"], "Expired");
  EXPECT_EQ(conn.request("/api/v1/pods?continue=not-a-token!", "test-token").status, 400);
}

TEST_F(FakeKubeApiTest, FiltersByLabelAndFieldSelectors) {
  api_.upsert("v1", "pods", pod("a", "web-1", {{"app", "web"}, {"tier", "front"}}));
  api_.upsert("v1", "pods", pod("a", "web-2", {{"app", "web"}}, "Pending"));
  api_.upsert("v1", "pods", pod("b", "db-1", {{"app", "db"}}));
  api_.upsert("v1", "events",
              {{"metadata", {{"namespace", "a"}, {"name", "e1"}}}, {"type", "Warning"}});
  api_.upsert("v1", "events",
              {{"metadata", {{"namespace", "a"}, {"name", "e2"}}}, {"type", "Normal"}});

  auto names = [&](const std::string& target) {
    auto res = get(target);
    EXPECT_EQ(res.status, 200) << target << ": " << res.body;
    std::vector<std::string> out;
    json body = res.json();
    for (const auto& item : body["items"]) out.push_back(item["metadata"]["name"]);
    return out;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(names("/api/v1/pods?labelSelector=app%3Dweb"), (V{"web-1", "web-2"}));
  EXPECT_EQ(names("/api/v1/pods?labelSelector=app!%3Dweb"), (V{"db-1"}));
  EXPECT_EQ(names("/api/v1/pods?labelSelector=tier"), (V{"web-1"}));
  EXPECT_EQ(names("/api/v1/pods?labelSelector=app%3Dweb,!tier"), (V{"web-2"}));
  EXPECT_EQ(names("/api/v1/pods?labelSelector=app%20in%20(db,web)"), (V{"web-1", "web-2", "db-1"}));
  EXPECT_EQ(names("/api/v1/pods?fieldSelector=status.phase%3DPending"), (V{"web-2"}));
  EXPECT_EQ(names("/api/v1/pods?fieldSelector=metadata.namespace%3Db"), (V{"db-1"}));
  EXPECT_EQ(names("/api/v1/pods?fieldSelector=metadata.name%3Dweb-1"), (V{"web-1"}));
  EXPECT_EQ(names("/api/v1/namespaces/a/events?fieldSelector=type%3DWarning"), (V{"e1"}));
  EXPECT_EQ(names("/api/v1/namespaces/b/pods"), (V{"db-1"}));
  auto bad = get("/api/v1/pods?labelSelector=a%3D%3D%3Db");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.json()["reason"], "BadRequest");
}

TEST_F(FakeKubeApiTest, WatchStreamsAddedModifiedDeletedAndBookmarks) {
  std::string rv = get("/api/v1/pods").json()["metadata"]["resourceVersion"];
  auto w = watch("/api/v1/pods?watch=1&resourceVersion=" + rv +
                 "&allowWatchBookmarks=true&timeoutSeconds=60");
  ASSERT_TRUE(wait_watches(1));
  api_.upsert("v1", "pods", pod("ns", "p"));
  api_.upsert("v1", "pods", pod("ns", "p", json::object(), "Succeeded"));
  api_.remove("v1", "pods", "ns", "p");
  api_.send_bookmarks();
  ASSERT_TRUE(w->wait_lines(4));
  EXPECT_EQ(w->status(), 200);
  EXPECT_EQ(w->headers()["Content-Type"], "application/json");
  EXPECT_EQ(w->headers()["Transfer-Encoding"], "chunked");
  auto events = w->events();
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[0]["type"], "ADDED");
  EXPECT_EQ(events[1]["type"], "MODIFIED");
  EXPECT_EQ(events[1]["object"]["status"]["phase"], "Succeeded");
  EXPECT_EQ(events[2]["type"], "DELETED");
  EXPECT_EQ(events[3]["type"], "BOOKMARK");
  uint64_t last = std::stoull(rv);
  for (const auto& e : events) {
    uint64_t this_rv = std::stoull(e["object"]["metadata"]["resourceVersion"].get<std::string>());
    // Events strictly increase; a bookmark may repeat the last event's version.
    if (e["type"] == "BOOKMARK") {
      EXPECT_GE(this_rv, last) << e.dump();
    } else {
      EXPECT_GT(this_rv, last) << e.dump();
    }
    last = this_rv;
  }
  EXPECT_EQ(events[3]["object"]["metadata"].size(), 1u);

  api_.end_open_watches();
  EXPECT_TRUE(w->wait_finished());
  EXPECT_TRUE(w->ended_cleanly());
  EXPECT_EQ(api_.open_watch_count(), 0u);
}

TEST_F(FakeKubeApiTest, WatchReplaysHistoryAndAppliesSelectors) {
  std::string rv = std::to_string(api_.resource_version());
  api_.upsert("v1", "pods", pod("ns", "a", {{"app", "web"}}));
  api_.upsert("v1", "pods", pod("ns", "b", {{"app", "db"}}));
  api_.upsert("v1", "pods", pod("ns", "a", {{"app", "gone"}}));  // leaves the selector
  auto w = watch("/api/v1/pods?watch=true&labelSelector=app%3Dweb&resourceVersion=" + rv);
  ASSERT_TRUE(w->wait_lines(2));
  auto events = w->events();
  EXPECT_EQ(events[0]["type"], "ADDED");
  EXPECT_EQ(events[0]["object"]["metadata"]["name"], "a");
  EXPECT_EQ(events[1]["type"], "DELETED");  // no longer matching looks like a deletion

  // Without a resourceVersion the current state arrives as ADDED first.
  auto all = watch("/api/v1/namespaces/ns/pods?watch=1");
  ASSERT_TRUE(all->wait_lines(2));
  auto initial = all->events();
  for (const auto& e : initial) EXPECT_EQ(e["type"], "ADDED");
}

TEST_F(FakeKubeApiTest, WatchFromACompactedVersionGetsExpiredError) {
  std::string old_rv = std::to_string(api_.resource_version());
  api_.upsert("v1", "pods", pod("ns", "p"));
  api_.compact();
  auto w = watch("/api/v1/pods?watch=1&resourceVersion=" + old_rv);
  ASSERT_TRUE(w->wait_finished());
  auto events = w->events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["type"], "ERROR");
  EXPECT_EQ(events[0]["object"]["code"], 410);
  EXPECT_EQ(events[0]["object"]["reason"], "Expired");
  EXPECT_TRUE(w->ended_cleanly());

  // A list after compaction gives a version that can be watched again.
  std::string rv = get("/api/v1/pods").json()["metadata"]["resourceVersion"];
  auto again = watch("/api/v1/pods?watch=1&resourceVersion=" + rv);
  ASSERT_TRUE(wait_watches(1));
  api_.expire_open_watches();
  ASSERT_TRUE(again->wait_finished());
  auto expired = again->events();
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_EQ(expired[0]["object"]["code"], 410);
  EXPECT_EQ(api_.open_watch_count(), 0u);
}

TEST_F(FakeKubeApiTest, SplitsTheWatchByteStreamIntoChunks) {
  std::string rv = std::to_string(api_.resource_version());
  for (int i = 0; i < 5; ++i) api_.upsert("v1", "pods", pod("ns", "p" + std::to_string(i)));

  // Small chunks: every event spans several chunks.
  api_.set_watch_chunk_size(7);
  auto small = watch("/api/v1/pods?watch=1&resourceVersion=" + rv);
  ASSERT_TRUE(small->wait_lines(5));
  for (const auto& e : small->events()) EXPECT_EQ(e["type"], "ADDED") << e.dump();
  auto sizes = small->chunk_sizes();
  EXPECT_GT(sizes.size(), 5u * 2);
  for (auto size : sizes) EXPECT_LE(size, 7u);

  // Large chunks: the replayed events share one chunk.
  api_.set_watch_chunk_size(1 << 16);
  auto large = watch("/api/v1/pods?watch=1&resourceVersion=" + rv);
  ASSERT_TRUE(large->wait_lines(5));
  auto large_sizes = large->chunk_sizes();
  ASSERT_FALSE(large_sizes.empty());
  std::size_t total = 0;
  for (const auto& line : large->lines()) total += line.size() + 1;
  EXPECT_EQ(large_sizes[0], total);

  // Default: one chunk per event.
  api_.set_watch_chunk_size(0);
  auto per_event = watch("/api/v1/pods?watch=1&resourceVersion=" + rv);
  ASSERT_TRUE(per_event->wait_lines(5));
  EXPECT_EQ(per_event->chunk_sizes().size(), 5u);
}

TEST_F(FakeKubeApiTest, WatchEndsAfterTimeoutSecondsAndPassesRawLines) {
  auto w = watch("/api/v1/pods?watch=1&timeoutSeconds=1");
  ASSERT_TRUE(wait_watches(1));
  api_.send_raw_watch_line("this is not json");
  EXPECT_TRUE(w->wait_finished());
  EXPECT_TRUE(w->ended_cleanly());
  ASSERT_FALSE(w->lines().empty());
  EXPECT_EQ(w->lines()[0], "this is not json");
}

TEST_F(FakeKubeApiTest, AStalledWatchStaysOpenAndSilent) {
  const std::string rv = std::to_string(api_.resource_version());
  auto stalled = watch("/api/v1/pods?watch=1&timeoutSeconds=1&resourceVersion=" + rv);
  ASSERT_TRUE(wait_watches(1));
  api_.stall_open_watches();
  EXPECT_EQ(api_.open_watch_count(), 0u);
  api_.upsert("v1", "pods", pod("ns", "after-stall"));
  // A watch opened now gets the event and ends after its own timeout, later than the stalled
  // one's: by then the stalled one would have seen the event and ended had it not stalled.
  auto control = watch("/api/v1/pods?watch=1&timeoutSeconds=2&resourceVersion=" + rv);
  ASSERT_TRUE(control->wait_finished());
  ASSERT_EQ(control->lines().size(), 1u);
  EXPECT_TRUE(stalled->lines().empty());
  EXPECT_FALSE(
      stalled->wait([](const auto&, bool finished) { return finished; }, std::chrono::seconds(0)));
  // Only the server going away (or the client) ends it, without the terminating chunk.
  api_.stop();
  ASSERT_TRUE(stalled->wait_finished());
  EXPECT_FALSE(stalled->ended_cleanly());
}

TEST_F(FakeKubeApiTest, InjectsFailuresWithRetryAfter) {
  api_.inject_failure(429, 2, "/pods", 7);
  Connection conn = connect();
  auto first = conn.request("/api/v1/pods", "test-token");
  EXPECT_EQ(first.status, 429);
  EXPECT_EQ(first.headers["Retry-After"], "7");
  EXPECT_EQ(first.json()["reason"], "TooManyRequests");
  EXPECT_EQ(conn.request("/api/v1/events", "test-token").status, 200);  // not matching
  EXPECT_EQ(conn.request("/api/v1/pods", "test-token").status, 429);
  EXPECT_EQ(conn.request("/api/v1/pods", "test-token").status, 200);  // count used up

  api_.inject_failure(403, 1);
  auto forbidden = conn.request("/api/v1/events", "test-token");
  EXPECT_EQ(forbidden.status, 403);
  EXPECT_EQ(forbidden.json()["reason"], "Forbidden");

  api_.inject_failure(410, 1, "watch=1");
  auto w = watch("/api/v1/pods?watch=1");
  ASSERT_TRUE(w->wait_finished());
  EXPECT_EQ(w->status(), 410);
}

TEST_F(FakeKubeApiTest, SurvivesRestartAndStopsWithOpenWatches) {
  uint16_t port = api_.port();
  auto w = watch("/api/v1/pods?watch=1");
  ASSERT_TRUE(wait_watches(1));
  api_.stop();
  EXPECT_TRUE(w->wait_finished());
  EXPECT_FALSE(w->ended_cleanly());
  api_.start();
  EXPECT_EQ(api_.port(), port);
  EXPECT_EQ(get("/api/v1/pods").status, 200);
  auto w2 = watch("/api/v1/pods?watch=1");
  ASSERT_TRUE(wait_watches(1));
  // The fixture's destructor now stops the server with this watch still open.
}

TEST_F(FakeKubeApiTest, WritesAKubeconfigWithTheCaAndToken) {
  auto dir = std::filesystem::path(::testing::TempDir()) / "fake-kube-kubeconfig";
  std::string path = api_.write_kubeconfig(dir.string());
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  std::string config = text.str();
  EXPECT_NE(config.find("server: \"" + api_.url() + "\""), std::string::npos);
  EXPECT_NE(config.find("token: \"test-token\""), std::string::npos);
  EXPECT_NE(config.find("current-context: fake"), std::string::npos);
  auto ca_line = config.find("certificate-authority-data: ");
  ASSERT_NE(ca_line, std::string::npos);
  EXPECT_NE(config.find("LS0tLS1CRUdJTi", ca_line), std::string::npos);  // base64 "-----BEGIN"
  std::filesystem::remove_all(dir);
}

TEST_F(FakeKubeApiTest, CurlAcceptsTheCaWhenAvailable) {
  if (std::system("command -v curl >/dev/null 2>&1") != 0) GTEST_SKIP() << "curl not installed";
  auto dir = std::filesystem::path(::testing::TempDir()) / "fake-kube-curl";
  std::filesystem::create_directories(dir);
  auto ca = dir / "ca.crt";
  std::ofstream(ca) << api_.ca_pem();
  api_.upsert("v1", "pods", pod("ns", "p"));
  std::string cmd = "curl -sS --max-time 10 --cacert " + ca.string() +
                    " -H 'Authorization: Bearer test-token' '" + api_.url() +
                    "/api/v1/namespaces/ns/pods/p'";
  FILE* pipe = popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string out;
  char buf[4096];
  std::size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
  EXPECT_EQ(pclose(pipe), 0);
  EXPECT_EQ(json::parse(out, nullptr, false)["metadata"]["name"], "p") << out;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace mx::testing
