// How an HTTP(S) request failed, and the one mapping from a failure to the error_type label of
// modal_operator_errors_total (docs/metrics.md): timeout, connection, http_4xx, http_5xx, parse,
// auth. Which statuses count as "auth" is a per-source policy, stated where the source makes its
// client (AuthPolicy).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/duration.h"

namespace mx::net {

enum class ErrorKind {
  none,
  timeout,     // a deadline passed (resolve, connect, TLS, request, header or body)
  connection,  // resolve, connect, TLS (incl. certificate verification), a broken stream
  bad_url,     // the URL is not http(s):// or is malformed; nothing was sent
  http,        // a response arrived with a status the caller does not accept (`status`)
  parse,       // the response is not HTTP, or its content is not what the caller expects
  too_large,   // the response header or body is over its cap
  cancelled,   // the caller cancelled the request
};

// Which HTTP statuses are credential problems (error_type "auth") rather than http_4xx.
enum class AuthPolicy {
  // 401 and 403 are auth: the request carried credentials (the Kubernetes API: bearer token or
  // client certificate, and RBAC).
  credentials,
  // No status is auth: the request carried none, so a 401/403 means the URL points at the wrong
  // thing and counts as http_4xx (telemetry endpoints, the operator's /metrics).
  anonymous,
};

// The outcome of one step of a request. `message` is safe to log: it never holds a credential
// or a URL's query string.
struct Error {
  ErrorKind kind = ErrorKind::none;
  int status = 0;  // HTTP status (or the code of a Kubernetes watch ERROR event)
  std::string message;
  std::optional<Duration> retry_after;

  explicit operator bool() const { return kind != ErrorKind::none; }
};

// The error_type label for `error`: timeout; connection (also bad_url and cancelled); parse (also
// too_large: a body over the cap cannot be parsed); for http, "auth" when `policy` says so,
// http_5xx for 500-599 and http_4xx for everything else (redirects are not followed, so a 3xx
// also means the URL needs fixing).
std::string_view error_type(const Error& error, AuthPolicy policy);

// "modal-exporter/<version>", the User-Agent of every request.
std::string_view user_agent();

}  // namespace mx::net
