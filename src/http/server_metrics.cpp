// The HTTP server's self-metric families, declared with prometheus-cpp's builders
// (server_metrics.h).
#include "http/server_metrics.h"

#include <string>

namespace mx {
namespace {

// One unlabelled series of a family of its own.
prometheus::Counter& counter(prometheus::Registry& registry, const std::string& name,
                             const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(registry).Add({});
}

prometheus::Gauge& gauge(prometheus::Registry& registry, const std::string& name,
                         const std::string& help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(registry).Add({});
}

}  // namespace

ServerMetrics::ServerMetrics(prometheus::Registry& registry, bool web_config_file)
    : accepted(counter(registry, "modal_exporter_http_connections_accepted_total",
                       "Connections accepted by the metrics server.")),
      evicted(counter(registry, "modal_exporter_http_connections_evicted_total",
                      "Connections closed to admit a newcomer while at the cap (the one idle or "
                      "incomplete the longest).")),
      refused(counter(registry, "modal_exporter_http_connections_refused_total",
                      "Connections closed on accept: at the cap with every connection busy.")),
      timed_out{},
      open(gauge(registry, "modal_exporter_http_connections_open", "Connections open now.")),
      max(gauge(registry, "modal_exporter_http_connections_max",
                "The connection cap: web.max_connections, bounded by the open-file limit.")) {
  auto& timeouts =
      prometheus::BuildCounter()
          .Name("modal_exporter_http_connections_timed_out_total")
          .Help(
              "Connections closed by a deadline, by phase: header (TLS handshake and request "
              "headers), body, idle (keep-alive) or write.")
          .Register(registry);
  const char* phases[] = {"header", "body", "idle", "write"};  // TimeoutPhase's order
  for (std::size_t i = 0; i < timed_out.size(); ++i) {
    timed_out[i] = &timeouts.Add({{"phase", phases[i]}});
  }
  if (!web_config_file) return;
  auto& auth = prometheus::BuildCounter()
                   .Name("modal_exporter_http_auth_failures_total")
                   .Help(
                       "Requests refused with 401: no or malformed credentials (missing), "
                       "wrong user or password (wrong).")
                   .Register(registry);
  auth_missing = &auth.Add({{"reason", "missing"}});
  auth_wrong = &auth.Add({{"reason", "wrong"}});
  rate_limited = &counter(registry, "modal_exporter_http_rate_limited_total",
                          "Requests refused with 429 by the web config's rate_limit.");
  tls_handshake_failures =
      &counter(registry, "modal_exporter_http_tls_handshake_failures_total",
               "TLS handshakes that failed (bad client certificate, no shared version or "
               "cipher, plain HTTP on the TLS port, SAN not allowed).");
  last_reload_successful =
      &gauge(registry, "modal_exporter_web_config_last_reload_successful",
             "1 when the last load of --web.config.file (start, SIGHUP or file change) "
             "succeeded.");
  last_reload_successful->Set(1);
}

}  // namespace mx
