// A fake Kubernetes API server for tests and for the demo simulator (tools/modal-sim).
//
// It speaks the subset of the real protocol the exporter's client uses, over HTTPS with a CA
// made at runtime: LIST with limit/continue and label/field selectors, GET of one object, and
// WATCH streams (chunked newline-delimited JSON events with history replay, bookmarks and 410
// "Expired" errors). Protocol controls and fault injection let tests drive the awkward cases a
// real cluster produces only occasionally (compaction, dropped watches, throttling, RBAC denials).
//
// Behaviour worth knowing when writing tests against it:
// - resourceVersions are one global counter (like etcd's revision), starting at 100.
// - LIST ignores ?resourceVersion= and always serves the latest state; the first page's
//   metadata.resourceVersion is the current counter. The continue token (base64url JSON holding
//   that rv and the last key served) makes every later page read the SAME snapshot: the state at
//   that rv is rebuilt from the event history, so objects added, changed or removed during
//   pagination do not shift pages. When the history no longer reaches back to the token's rv
//   (compact(), or the history limit), the page request gets HTTP 410 Expired like a real server.
// - Items are ordered by "namespace/name". Core ("v1") list items carry no kind/apiVersion (as on
//   a real server); custom resources' items do. metadata.continue is omitted on the last page.
// - ?limit= is honoured up to set_max_page_size() (default 500); no limit (or 0) = everything.
// - WATCH without resourceVersion (or "0") first sends a synthetic ADDED for every matching
//   object, then live events. With an rv it replays every change after it, then streams live.
//   An rv older than the retained history (compact(), history limit) gets an ERROR 410 event.
//   With label/field selectors an object that stops matching is sent as DELETED and one that
//   starts matching as ADDED, as a real server does.
// - BOOKMARK events go only to watches opened with allowWatchBookmarks=true (real behaviour).
// - Watch responses carry "Connection: close": after the terminating chunk the server closes
//   the connection. Other responses honour HTTP/1.1 keep-alive.
// - Without timeoutSeconds a watch lasts until ended by a control method, stop(), or the client.
// - Field selectors work on any dotted path of the object (string/number/bool compared as
//   text; a missing field compares as ""), a superset of what a real server allows.
// - Authentication: the bearer token, or a client certificate signed by the test CA.
// - Failure injection is checked before authentication and matches the request target (path
//   and query), so "watch=1" targets watches only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace mx::testing {

class FakeKubeApi {
 public:
  struct Options {
    std::string token = "test-token";  // accepted bearer token ("Authorization: Bearer ...")
    std::string bind_address = "127.0.0.1";
    uint16_t port = 0;  // 0 = ephemeral
  };

  FakeKubeApi();
  explicit FakeKubeApi(Options options);
  ~FakeKubeApi();
  FakeKubeApi(const FakeKubeApi&) = delete;
  FakeKubeApi& operator=(const FakeKubeApi&) = delete;

  // Binds and serves on its own thread. Throws std::runtime_error when the bind fails. After
  // stop(), start() serves again on the same port (so clients can test reconnection) with the
  // same store, CA and certificate.
  void start();
  // Closes the listener and every connection (watches end abruptly, no terminating chunk).
  void stop();
  uint16_t port() const;
  std::string url() const;     // "https://127.0.0.1:<port>"
  std::string ca_pem() const;  // PEM of the test CA (EC P-256); server cert has SAN
                               // IP:127.0.0.1, DNS:localhost
  // A client certificate signed by the test CA: presenting it authenticates like the token.
  std::string client_cert_pem() const;
  std::string client_key_pem() const;
  // Writes <dir>/kubeconfig (created with mode 0600; dir is created if missing) pointing at url()
  // with the CA inline and the current token; returns its path.
  std::string write_kubeconfig(const std::string& dir) const;
  void set_token(std::string token);  // rotation: only the new token is accepted afterwards

  // ---- Object store ----
  // group_version: "v1" (core, /api/v1/...) or e.g. "modal-operator.io/v1alpha1" (/apis/...).
  // upsert: the object needs metadata.name; metadata.namespace defaults to "default" for
  // namespaced resources. Sets metadata.uid and creationTimestamp when missing (kept from the
  // stored object on update), metadata.resourceVersion always, kind/apiVersion when missing,
  // and notifies watchers (ADDED or MODIFIED). Returns the stored object. Throws
  // std::invalid_argument for a non-object or a missing name.
  nlohmann::json upsert(const std::string& group_version, const std::string& plural,
                        nlohmann::json object);
  // Emits DELETED with the object carrying a new resourceVersion; false when it did not exist.
  bool remove(const std::string& group_version, const std::string& plural,
              const std::string& namespace_name, const std::string& name);
  std::optional<nlohmann::json> get(const std::string& group_version, const std::string& plural,
                                    const std::string& namespace_name,
                                    const std::string& name) const;
  // Every stored object of a resource (namespace_name empty = all), ordered by namespace/name.
  std::vector<nlohmann::json> list(const std::string& group_version, const std::string& plural,
                                   const std::string& namespace_name = "") const;
  // The current value of the global resourceVersion counter.
  uint64_t resource_version() const;

  // Resource types the server knows. Pods, events, namespaces (v1) and modaljobs,
  // modalendpoints, modalfunctions (modal-operator.io/v1alpha1) are registered from the start;
  // upsert registers unknown ones (kind guessed from the plural). Paths of unregistered
  // resources get 404, e.g. to simulate a cluster without the operator's CRDs.
  void register_resource(const std::string& group_version, const std::string& plural,
                         const std::string& kind, bool namespaced = true);
  // Forgets the resource type and its objects (no DELETED events: the whole type is gone).
  void unregister_resource(const std::string& group_version, const std::string& plural);

  // ---- Protocol controls ----
  // Every resourceVersion up to now becomes too old: a WATCH from one of them gets an ERROR 410
  // event, a continue token made before gets HTTP 410. The counter advances by one so a LIST
  // made afterwards returns a usable rv.
  void compact();
  // Number of history events kept for replay (default 20000); older ones are dropped, which
  // makes rvs before them too old, as a real server's watch cache window does.
  void set_history_limit(std::size_t events);
  void expire_open_watches();  // ERROR 410 event on every open watch, then ends it
  void end_open_watches();     // ends every open watch cleanly (terminating chunk)
  // Every open watch goes silent without ending: no more events, no terminating chunk, its
  // timeoutSeconds no longer ends it, the connection stays open (a stream stuck in a proxy).
  // Only the client hanging up, or stop(), ends it. It no longer counts as open.
  void stall_open_watches();
  void send_bookmarks();  // BOOKMARK to every open watch that allows bookmarks
  void send_raw_watch_line(const std::string& line);  // "line\n" verbatim to every open watch
  // 0 = one chunk per event; N = the watch byte stream is cut into chunks of N bytes (what is
  // queued is flushed at once, so a partial last chunk is sent rather than held back).
  void set_watch_chunk_size(std::size_t bytes);
  void set_max_page_size(std::size_t n);  // cap on ?limit= (default 500)

  // ---- Fault injection ----
  // The next `count` requests whose target contains `path_substring` (empty = any) get HTTP
  // `status` with a Kubernetes Status JSON body; a Retry-After header when retry_after_seconds
  // is given. Several injections queue up; the oldest matching one is used first.
  void inject_failure(int status, int count, std::string path_substring = "",
                      std::optional<int> retry_after_seconds = std::nullopt);
  void clear_failures();

  // ---- Observation ----
  // Every request seen, as "METHOD target" (e.g. "GET /api/v1/pods?limit=500"), oldest first
  // (only the most recent ~100000-200000 are kept).
  std::vector<std::string> requests() const;
  void clear_requests();
  // Watches currently registered for events (opened, not yet ended or disconnected).
  std::size_t open_watch_count() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mx::testing
