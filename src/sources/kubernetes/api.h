// The Kubernetes API as this source talks to it, over the shared HTTP client (net/): where the
// server is (base path, Host), how requests authenticate (bearer token, client certificate), and
// the Kubernetes reading of failures (401/403 are "auth", log lines that name the RBAC to grant).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "common/duration.h"
#include "net/errors.h"
#include "net/http_client.h"
#include "sources/kubernetes/cluster_access.h"
#include "sources/kubernetes/exec_credential.h"

namespace mx::kube {

namespace asio = boost::asio;

using ApiError = net::Error;
using ErrorKind = net::ErrorKind;

// Requests carry credentials: 401 and 403 count as error_type "auth" (docs/metrics.md).
inline constexpr net::AuthPolicy kAuthPolicy = net::AuthPolicy::credentials;

// The error_type label of modal_operator_errors_total{component="kubernetes_api"}.
std::string_view error_type(const ApiError& error);

// The bearer token: static, or a file re-read every `reload_interval` (and on demand after a 401).
class TokenSource {
 public:
  TokenSource(std::string static_token, std::string file, Duration reload_interval);
  const std::string& current();
  // Re-reads the file now; true when the token changed.
  bool reload();
  bool from_file() const { return !file_.empty(); }

 private:
  std::string token_;
  std::string file_;
  Duration reload_interval_;
  std::chrono::steady_clock::time_point loaded_at_{};
  bool warned_ = false;
};

// One cluster: its access, its tokens, and an HTTP client set up with its TLS material.
class ApiSession {
 public:
  // Throws AccessError when the TLS material (CA, client certificate or key) is unusable.
  ApiSession(asio::any_io_executor executor, ClusterAccess access, Duration token_reload_interval);

  const ClusterAccess& access() const { return access_; }
  const asio::any_io_executor& executor() const { return http_->executor(); }
  TokenSource& tokens() { return tokens_; }
  // A new request on a new connection.
  std::shared_ptr<net::Exchange> exchange() { return http_->exchange(); }
  // GET base_path + `target`, Accept: application/json, with the current credential: the bearer
  // token, or what the exec plugin returns (running it when its credential is missing, expired
  // or was rejected). An error (ErrorKind::connection) when the plugin fails.
  asio::awaitable<ApiError> request(const std::string& target, net::Request& out);
  // The API answered 401 to `used`: re-read the token file, or have the exec plugin run again.
  // True when a retry would carry another credential.
  bool unauthorized(const net::Request& used);
  // Kills a running exec plugin; requests waiting for it fail.
  void cancel();

 private:
  ClusterAccess access_;
  TokenSource tokens_;
  std::shared_ptr<net::HttpClient> http_;
  net::HttpUrl base_;  // target: the server's base path
  net::TlsOptions tls_options_;
  std::shared_ptr<ExecCredentialProvider> exec_;
  // The exec credential last handed out, and the TLS context holding its client certificate.
  std::shared_ptr<const ExecCredential> exec_credential_;
  std::shared_ptr<asio::ssl::context> exec_tls_;
};

struct ResourceRef {
  std::string display;     // for logs: "modal-operator.io/modaljobs", "pods", "events"
  std::string api_prefix;  // "/apis/modal-operator.io/v1alpha1" or "/api/v1"
  std::string plural;
  std::string namespace_name;  // "" = all namespaces
  std::string label_selector;
  std::string field_selector;

  std::string collection_path() const;
};

// Logs one failed API call: 401/403 name the verb and resource and what RBAC to grant.
void log_api_failure(std::string_view verb, const ResourceRef& resource, const ApiError& error,
                     Duration retry_in);

// URL-encodes a query parameter value.
std::string url_encode(std::string_view value);

// Text of a Kubernetes Status body ("message"), shortened and safe to log; "" when absent.
std::string status_message(std::string_view body);

}  // namespace mx::kube
