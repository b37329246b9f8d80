// Where the Kubernetes API is and how to authenticate to it: a kubeconfig file or the
// in-cluster service account. Pure file/env reading; no network.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.h"

namespace mx::kube {

// Any reason the cluster cannot be reached as configured. The text never holds a credential.
struct AccessError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct ServerAddress {
  bool tls = true;
  std::string host;       // without brackets for IPv6
  std::string port;       // "443" / "80" when the URL has none
  std::string base_path;  // "" or "/prefix" (no trailing slash)
};

// "https://host:6443", "http://127.0.0.1:8080/prefix", "https://[::1]:6443". Throws AccessError.
ServerAddress parse_server_url(std::string_view url);

// A kubeconfig user's exec credential plugin (exec_credential.h runs it).
struct ExecConfig {
  std::string api_version;  // client.authentication.k8s.io/v1 or .../v1beta1
  std::string command;      // a name looked up on PATH, or a path
  std::vector<std::string> args;
  std::vector<std::pair<std::string, std::string>> env;  // added to the exporter's environment
  std::string install_hint;
  // KUBERNETES_EXEC_INFO: the ExecCredential the plugin gets (spec.cluster when
  // provideClusterInfo).
  std::string exec_info;
};

struct ClusterAccess {
  std::string origin;  // for logs: "kubeconfig /path (context ctx)" or "in-cluster"
  ServerAddress server;
  std::string tls_server_name;  // overrides the name the certificate is checked against
  std::string proxy_url;        // proxy-url: every request goes through it (else the environment)
  std::string ca_pem;           // certificate-authority-data (decoded)
  std::string ca_file;          // certificate-authority / in-cluster ca.crt
  bool insecure_skip_tls_verify = false;
  std::string client_cert_pem;
  std::string client_key_pem;
  std::string token;               // static bearer token
  std::string token_file;          // re-read periodically (projected service-account tokens rotate)
  std::optional<ExecConfig> exec;  // set when the user has no static credential but a plugin
};

// The in-cluster locations; tests point them at temporary files and a fake server.
struct InClusterPaths {
  std::string token_file = "/var/run/secrets/kubernetes.io/serviceaccount/token";
  std::string ca_file = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
  std::optional<std::string> service_host;  // unset: $KUBERNETES_SERVICE_HOST
  std::optional<std::string> service_port;  // unset: $KUBERNETES_SERVICE_PORT
};

// Parses a kubeconfig document; relative file paths are resolved against `base_dir`.
ClusterAccess parse_kubeconfig(const std::string& yaml_text, const std::string& origin,
                               const std::string& base_dir);
// Reads the kubeconfig at `path`; a $KUBECONFIG-style list "a:b" is merged as kubectl merges it
// (the first definition of a name and the first current-context win; missing files skipped).
ClusterAccess load_kubeconfig(const std::string& path);
ClusterAccess load_in_cluster(const InClusterPaths& paths);
// config.kubeconfig when set, else in-cluster. Throws AccessError with a clear message.
ClusterAccess resolve_cluster_access(const KubernetesConfig& config, const InClusterPaths& paths);

std::optional<std::string> read_file(const std::string& path, std::size_t max_bytes = 1 << 20);

}  // namespace mx::kube
