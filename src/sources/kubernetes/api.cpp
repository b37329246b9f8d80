#include "sources/kubernetes/api.h"

#include <cctype>

#include <nlohmann/json.hpp>

#include "common/log.h"

namespace mx::kube {

using nlohmann::json;

std::string_view error_type(const ApiError& error) {
  return net::error_type(error, kAuthPolicy);
}

// --- TokenSource -------------------------------------------------------------------------------

TokenSource::TokenSource(std::string static_token, std::string file, Duration reload_interval)
    : token_(std::move(static_token)), file_(std::move(file)), reload_interval_(reload_interval) {
  if (!file_.empty()) reload();
}

const std::string& TokenSource::current() {
  if (!file_.empty() && std::chrono::steady_clock::now() - loaded_at_ >= reload_interval_) reload();
  return token_;
}

bool TokenSource::reload() {
  if (file_.empty()) return false;
  loaded_at_ = std::chrono::steady_clock::now();
  auto text = read_file(file_, 64 * 1024);
  if (!text) {
    // Keep the last good token: a rotation briefly replaces the file's symlink target.
    if (!warned_)
      log::warn("cannot read the Kubernetes token file; keeping the last token", {{"file", file_}});
    warned_ = true;
    return false;
  }
  warned_ = false;
  std::string token = *text;
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ')) {
    token.pop_back();
  }
  if (token == token_) return false;
  token_ = std::move(token);
  return true;
}

// --- ApiSession --------------------------------------------------------------------------------

ApiSession::ApiSession(asio::any_io_executor executor, ClusterAccess access,
                       Duration token_reload_interval)
    : access_(std::move(access)),
      tokens_(access_.token, access_.token_file, token_reload_interval) {
  const auto& server = access_.server;
  net::ClientOptions options;
  options.tls.ca_pem = access_.ca_pem;
  options.tls.ca_file = access_.ca_file;
  options.tls.client_cert_pem = access_.client_cert_pem;
  options.tls.client_key_pem = access_.client_key_pem;
  options.tls.server_name = access_.tls_server_name;
  options.tls.insecure_skip_verify = access_.insecure_skip_tls_verify;
  options.proxy_url = access_.proxy_url;
  tls_options_ = options.tls;
  if (access_.exec) exec_ = std::make_shared<ExecCredentialProvider>(executor, *access_.exec);
  if (server.tls) {
    // Built now, so that unusable material is a configuration error, not a failed request.
    try {
      options.tls_context = net::make_tls_client_context(options.tls);
    } catch (const net::TlsError& e) {
      throw AccessError(access_.origin + ": " + e.what());
    }
  }
  http_ = net::HttpClient::create(std::move(executor), std::move(options));

  base_.tls = server.tls;
  base_.host = server.host;
  base_.port = server.port;
  base_.target = server.base_path;
  const bool default_port =
      (server.tls && server.port == "443") || (!server.tls && server.port == "80");
  const bool ipv6 = server.host.find(':') != std::string::npos;
  base_.host_header = ipv6 ? "[" + server.host + "]" : server.host;
  if (!default_port) base_.host_header += ":" + server.port;
}

asio::awaitable<ApiError> ApiSession::request(const std::string& target, net::Request& out) {
  out = net::Request{};
  out.url = base_;
  out.url.target += target;
  out.accept = "application/json";
  if (!exec_) {
    out.bearer_token = tokens_.current();
    co_return ApiError{};
  }
  auto got = co_await exec_->get();
  if (!got.credential) co_return ApiError{ErrorKind::connection, 0, got.error, std::nullopt};
  if (got.credential != exec_credential_) {
    exec_tls_.reset();
    if (!got.credential->client_cert_pem.empty() && access_.server.tls) {
      net::TlsOptions tls = tls_options_;
      tls.client_cert_pem = got.credential->client_cert_pem;
      tls.client_key_pem = got.credential->client_key_pem;
      try {
        exec_tls_ = net::make_tls_client_context(tls);
      } catch (const net::TlsError& e) {
        co_return ApiError{ErrorKind::connection, 0,
                           "the exec credential plugin " + access_.exec->command +
                               " returned an unusable client certificate: " + e.what(),
                           std::nullopt};
      }
    }
    exec_credential_ = got.credential;
  }
  out.bearer_token = exec_credential_->token;
  out.tls_context = exec_tls_;
  co_return ApiError{};
}

bool ApiSession::unauthorized(const net::Request& used) {
  if (!exec_) {
    tokens_.reload();
    return tokens_.from_file() && tokens_.current() != used.bearer_token;
  }
  if (!exec_credential_ || used.bearer_token != exec_credential_->token ||
      used.tls_context != exec_tls_) {
    return true;  // made with an older credential than the latest
  }
  return exec_->rejected(exec_credential_);
}

void ApiSession::cancel() {
  if (exec_) exec_->cancel();
}

// --- API helpers -------------------------------------------------------------------------------

std::string ResourceRef::collection_path() const {
  std::string path = api_prefix;
  if (!namespace_name.empty()) path += "/namespaces/" + url_encode(namespace_name);
  path += "/" + plural;
  return path;
}

void log_api_failure(std::string_view verb, const ResourceRef& resource, const ApiError& error,
                     Duration retry_in) {
  const std::string where = std::string(verb) + " on " + resource.display;
  const std::string ns = resource.namespace_name.empty() ? "*" : resource.namespace_name;
  // One line per failed attempt; attempts are spaced by the backoff, so this never floods.
  if (error.kind == ErrorKind::http && error.status == 403) {
    log::error(
        "Kubernetes API denied " + where + " (403): grant get/list/watch on " + resource.display +
            " to the exporter's service account",
        {{"namespace", ns}, {"retry_in", format_duration(retry_in)}, {"detail", error.message}});
  } else if (error.kind == ErrorKind::http && error.status == 401) {
    log::error("Kubernetes API rejected the credentials for " + where +
                   " (401): the token or client certificate is invalid or expired",
               {{"namespace", ns}, {"retry_in", format_duration(retry_in)}});
  } else if (error.kind == ErrorKind::http && error.status == 404) {
    // The usual cause on a first install: the operator's CRDs are not (yet) in the cluster.
    log::error("Kubernetes API has no " + resource.display + " (404): " +
                   (resource.display.rfind("modal-operator.io/", 0) == 0
                        ? "are the modal-operator CRDs installed?"
                        : "is the server a Kubernetes API server?"),
               {{"namespace", ns}, {"retry_in", format_duration(retry_in)}});
  } else {
    log::warn("Kubernetes API " + where + " failed", {{"namespace", ns},
                                                      {"error_type", error_type(error)},
                                                      {"status", error.status},
                                                      {"error", error.message},
                                                      {"retry_in", format_duration(retry_in)}});
  }
}

std::string url_encode(std::string_view value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : value) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string status_message(std::string_view body) {
  std::string text;
  json j = json::parse(body, nullptr, false);
  if (!j.is_discarded() && j.is_object()) {
    auto m = j.find("message");
    if (m != j.end() && m->is_string()) text = m->get<std::string>();
  }
  if (text.size() > 300) text = text.substr(0, 300) + "...";
  for (char& c : text) {
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  }
  return text;
}

}  // namespace mx::kube
