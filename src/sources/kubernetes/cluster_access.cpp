#include "sources/kubernetes/cluster_access.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

#include "common/base64.h"
#include "net/proxy.h"

namespace mx::kube {
namespace {

std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::string(v) : std::string{};
}

std::string trim_copy(std::string_view s) {
  const auto* ws = " \t\r\n";
  const auto b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  const auto e = s.find_last_not_of(ws);
  return std::string(s.substr(b, e - b + 1));
}

// Finds the entry named `name` in a kubeconfig list such as `clusters: [{name, cluster: {...}}]`.
YAML::Node named_entry(const YAML::Node& root, const char* list_key, const char* item_key,
                       const std::string& name) {
  const YAML::Node list = root[list_key];
  if (!list || !list.IsSequence()) return YAML::Node(YAML::NodeType::Undefined);
  for (const auto& entry : list) {
    if (!entry.IsMap()) continue;
    const YAML::Node n = entry["name"];
    if (n && n.IsScalar() && n.Scalar() == name) {
      const YAML::Node item = entry[item_key];
      return item && item.IsMap() ? item : YAML::Node(YAML::NodeType::Map);
    }
  }
  return YAML::Node(YAML::NodeType::Undefined);
}

std::string scalar(const YAML::Node& map, const char* key) {
  if (!map || !map.IsMap()) return {};
  const YAML::Node n = map[key];
  if (!n || !n.IsScalar()) return {};
  return n.Scalar();
}

bool has_key(const YAML::Node& map, const char* key) {
  return map && map.IsMap() && map[key] && !map[key].IsNull();
}

nlohmann::json yaml_to_json(const YAML::Node& node) {
  if (!node || node.IsNull()) return nullptr;
  if (node.IsScalar()) return node.Scalar();
  if (node.IsSequence()) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& item : node) out.push_back(yaml_to_json(item));
    return out;
  }
  nlohmann::json out = nlohmann::json::object();
  for (const auto& kv : node) out[kv.first.as<std::string>()] = yaml_to_json(kv.second);
  return out;
}

std::string resolve_path(const std::string& path, const std::string& base_dir) {
  if (path.empty() || base_dir.empty()) return path;
  std::filesystem::path p(path);
  if (p.is_absolute()) return path;
  return (std::filesystem::path(base_dir) / p).string();
}

// `<key>-data` (base64) or `<key>` (a file path), read into PEM text.
std::string pem_from(const YAML::Node& map, const std::string& key, const std::string& what,
                     const std::string& base_dir, std::string* file_out = nullptr) {
  const std::string data = scalar(map, (key + "-data").c_str());
  if (!data.empty()) {
    auto decoded = base64::decode(data);
    if (!decoded) throw AccessError(what + ": " + key + "-data is not valid base64");
    return *decoded;
  }
  const std::string file = resolve_path(scalar(map, key.c_str()), base_dir);
  if (file.empty()) return {};
  if (file_out != nullptr) {
    *file_out = file;
    return {};
  }
  auto text = read_file(file);
  if (!text) throw AccessError(what + ": cannot read " + key + " file " + file);
  return *text;
}

// The ExecCredential the plugin reads from KUBERNETES_EXEC_INFO: never interactive (the exporter
// has no terminal), and the cluster when the kubeconfig asks for it.
std::string exec_info(const std::string& api_version, bool provide_cluster_info,
                      const YAML::Node& cluster, const ClusterAccess& a) {
  nlohmann::json spec{{"interactive", false}};
  if (provide_cluster_info) {
    nlohmann::json c{{"server", scalar(cluster, "server")}};
    if (!a.tls_server_name.empty()) c["tlsServerName"] = a.tls_server_name;
    if (a.insecure_skip_tls_verify) c["insecureSkipTLSVerify"] = true;
    std::string ca = a.ca_pem;
    if (ca.empty() && !a.ca_file.empty()) ca = read_file(a.ca_file).value_or("");
    if (!ca.empty()) c["certificateAuthorityData"] = base64::encode(ca);
    if (const std::string proxy = scalar(cluster, "proxy-url"); !proxy.empty()) {
      c["proxyURL"] = proxy;
    }
    const YAML::Node extensions = cluster["extensions"];
    if (extensions && extensions.IsSequence()) {
      for (const auto& ext : extensions) {
        if (scalar(ext, "name") != "client.authentication.k8s.io/exec") continue;
        c["config"] = yaml_to_json(ext["extension"]);
      }
    }
    spec["cluster"] = std::move(c);
  }
  return nlohmann::json{{"apiVersion", api_version}, {"kind", "ExecCredential"}, {"spec", spec}}
      .dump();
}

ExecConfig parse_exec(const YAML::Node& exec, const YAML::Node& cluster, const ClusterAccess& a,
                      const std::string& what, const std::string& base_dir) {
  if (!exec.IsMap()) throw AccessError(what + ": exec is not a mapping");
  ExecConfig e;
  e.api_version = scalar(exec, "apiVersion");
  if (e.api_version != "client.authentication.k8s.io/v1" &&
      e.api_version != "client.authentication.k8s.io/v1beta1") {
    throw AccessError(what + ": exec apiVersion \"" + e.api_version +
                      "\" is not supported (client.authentication.k8s.io/v1 or v1beta1)");
  }
  e.command = scalar(exec, "command");
  if (e.command.empty()) throw AccessError(what + ": exec has no command");
  // As kubectl does: a command with a path separator is relative to the kubeconfig's directory.
  if (e.command.find('/') != std::string::npos) e.command = resolve_path(e.command, base_dir);
  if (const YAML::Node args = exec["args"]; args && !args.IsNull()) {
    if (!args.IsSequence()) throw AccessError(what + ": exec args is not a list");
    for (const auto& arg : args) e.args.push_back(arg.as<std::string>());
  }
  if (const YAML::Node env = exec["env"]; env && !env.IsNull()) {
    if (!env.IsSequence()) throw AccessError(what + ": exec env is not a list");
    for (const auto& var : env) {
      const std::string name = scalar(var, "name");
      if (name.empty()) throw AccessError(what + ": an exec env entry has no name");
      e.env.emplace_back(name, scalar(var, "value"));
    }
  }
  std::string mode = scalar(exec, "interactiveMode");
  if (mode.empty()) {
    if (e.api_version == "client.authentication.k8s.io/v1") {
      throw AccessError(what + ": exec interactiveMode must be set for " + e.api_version);
    }
    mode = "IfAvailable";
  }
  if (mode == "Always") {
    throw AccessError(what + ": exec interactiveMode Always needs a terminal, which " +
                      "modal-exporter never has; use a plugin mode that runs without one");
  }
  if (mode != "Never" && mode != "IfAvailable") {
    throw AccessError(what + ": exec interactiveMode \"" + mode + "\" is not valid");
  }
  e.install_hint = trim_copy(scalar(exec, "installHint"));
  bool provide = false;
  if (has_key(exec, "provideClusterInfo")) provide = exec["provideClusterInfo"].as<bool>();
  e.exec_info = exec_info(e.api_version, provide, cluster, a);
  return e;
}

}  // namespace

std::optional<std::string> read_file(const std::string& path, std::size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::string data;
  char buf[4096];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    data.append(buf, static_cast<std::size_t>(in.gcount()));
    if (data.size() > max_bytes) return std::nullopt;
  }
  if (in.bad()) return std::nullopt;
  return data;
}

ServerAddress parse_server_url(std::string_view url) {
  ServerAddress a;
  std::string_view rest = url;
  if (rest.rfind("https://", 0) == 0) {
    rest.remove_prefix(8);
  } else if (rest.rfind("http://", 0) == 0) {
    a.tls = false;
    rest.remove_prefix(7);
  } else {
    throw AccessError("server URL \"" + std::string(url) +
                      "\" must start with https:// or http://");
  }
  const auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    std::string_view path = rest.substr(slash);
    while (!path.empty() && path.back() == '/') path.remove_suffix(1);
    a.base_path = std::string(path);
  }
  if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
    authority.remove_prefix(at + 1);  // user info is never used for Kubernetes
  }
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) {
      throw AccessError("server URL \"" + std::string(url) + "\" has an unterminated IPv6 address");
    }
    a.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':')
        throw AccessError("server URL \"" + std::string(url) + "\" is malformed");
      port = after.substr(1);
    }
  } else {
    const auto colon = authority.rfind(':');
    a.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (a.host.empty()) throw AccessError("server URL \"" + std::string(url) + "\" has no host");
  if (!port.empty()) {
    for (char c : port) {
      if (c < '0' || c > '9')
        throw AccessError("server URL \"" + std::string(url) + "\" has a bad port");
    }
    if (port.size() > 5 || std::stoi(std::string(port)) > 65535 ||
        std::stoi(std::string(port)) == 0) {
      throw AccessError("server URL \"" + std::string(url) + "\" has a bad port");
    }
    a.port = std::string(port);
  } else {
    a.port = a.tls ? "443" : "80";
  }
  return a;
}

ClusterAccess parse_kubeconfig(const std::string& yaml_text, const std::string& origin,
                               const std::string& base_dir) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw AccessError("kubeconfig " + origin + " is not valid YAML: " + e.what());
  }
  if (!root || !root.IsMap()) throw AccessError("kubeconfig " + origin + " is not a YAML mapping");

  try {
    std::string context_name = scalar(root, "current-context");
    if (context_name.empty()) {
      // kubectl insists on current-context; one lone context is unambiguous enough to use.
      const YAML::Node contexts = root["contexts"];
      if (contexts && contexts.IsSequence() && contexts.size() == 1) {
        context_name = scalar(contexts[0], "name");
      }
      if (context_name.empty())
        throw AccessError("kubeconfig " + origin + " has no current-context");
    }
    const YAML::Node context = named_entry(root, "contexts", "context", context_name);
    if (!context) {
      throw AccessError("kubeconfig " + origin + ": context \"" + context_name +
                        "\" is not defined");
    }
    const std::string cluster_name = scalar(context, "cluster");
    const std::string user_name = scalar(context, "user");
    const YAML::Node cluster = named_entry(root, "clusters", "cluster", cluster_name);
    if (cluster_name.empty() || !cluster) {
      throw AccessError("kubeconfig " + origin + ": context \"" + context_name +
                        "\" names cluster \"" + cluster_name + "\", which is not defined");
    }

    ClusterAccess a;
    a.origin = "kubeconfig " + origin + " (context " + context_name + ")";
    const std::string server = scalar(cluster, "server");
    if (server.empty()) {
      throw AccessError("kubeconfig " + origin + ": cluster \"" + cluster_name +
                        "\" has no server");
    }
    a.server = parse_server_url(server);
    a.proxy_url = scalar(cluster, "proxy-url");
    if (!a.proxy_url.empty()) {
      std::string why;
      if (!net::parse_proxy_url(a.proxy_url, &why)) {
        throw AccessError("kubeconfig " + origin + ": cluster \"" + cluster_name +
                          "\" proxy-url: " + why);
      }
    }
    a.tls_server_name = scalar(cluster, "tls-server-name");
    const std::string what = "kubeconfig " + origin + " cluster \"" + cluster_name + "\"";
    a.ca_pem = pem_from(cluster, "certificate-authority", what, base_dir, &a.ca_file);
    if (has_key(cluster, "insecure-skip-tls-verify")) {
      // Honoured only when explicitly true; anything else keeps verification on.
      try {
        a.insecure_skip_tls_verify = cluster["insecure-skip-tls-verify"].as<bool>();
      } catch (const YAML::Exception&) {
        a.insecure_skip_tls_verify = false;
      }
    }

    if (!user_name.empty()) {
      const YAML::Node user = named_entry(root, "users", "user", user_name);
      if (!user) {
        throw AccessError("kubeconfig " + origin + ": context \"" + context_name +
                          "\" names user \"" + user_name + "\", which is not defined");
      }
      const std::string uwhat = "kubeconfig " + origin + " user \"" + user_name + "\"";
      // Refused by name rather than ignored: without them the requests would run as someone else.
      for (const char* key :
           {"username", "password", "as", "as-uid", "as-groups", "as-user-extra"}) {
        if (has_key(user, key)) {
          throw AccessError(uwhat + " sets " + key +
                            ", which modal-exporter does not support (basic authentication and "
                            "impersonation); use a token, client certificate or exec plugin");
        }
      }
      a.token = trim_copy(scalar(user, "token"));
      a.token_file = resolve_path(scalar(user, "tokenFile"), base_dir);
      a.client_cert_pem = pem_from(user, "client-certificate", uwhat, base_dir);
      a.client_key_pem = pem_from(user, "client-key", uwhat, base_dir);
      if (a.client_cert_pem.empty() != a.client_key_pem.empty()) {
        throw AccessError(uwhat + " has a client certificate without a key (or a key without one)");
      }
      const bool has_static =
          !a.token.empty() || !a.token_file.empty() || !a.client_cert_pem.empty();
      if (!has_static && has_key(user, "exec")) {
        a.exec = parse_exec(user["exec"], cluster, a, uwhat, base_dir);
      }
      if (!has_static && has_key(user, "auth-provider")) {
        throw AccessError("kubeconfig user " + user_name +
                          " uses an auth-provider plugin, which modal-exporter does not support; "
                          "use a token or client certificate");
      }
      if (!a.token_file.empty() && !read_file(a.token_file)) {
        throw AccessError(uwhat + ": cannot read tokenFile " + a.token_file);
      }
    }
    return a;
  } catch (const YAML::Exception& e) {
    throw AccessError("kubeconfig " + origin + " is malformed: " + e.what());
  }
}

namespace {

// Makes the file paths of a kubeconfig entry absolute against the directory of the file that
// defined it, so that entries of several files can live in one merged document.
void absolutize(YAML::Node item, const std::string& base_dir) {
  if (!item || !item.IsMap()) return;
  for (const char* key :
       {"certificate-authority", "client-certificate", "client-key", "tokenFile"}) {
    const std::string value = scalar(item, key);
    if (!value.empty()) item[key] = resolve_path(value, base_dir);
  }
  YAML::Node exec = item["exec"];
  if (exec && exec.IsMap()) {
    const std::string command = scalar(exec, "command");
    if (command.find('/') != std::string::npos) exec["command"] = resolve_path(command, base_dir);
  }
}

}  // namespace

ClusterAccess load_kubeconfig(const std::string& path_list) {
  // $KUBECONFIG may list several files; kubectl merges them: the first file to define a
  // cluster, user or context (by name) or current-context wins; missing files are skipped.
  std::vector<std::string> files;
  std::stringstream ss(path_list);
  std::string item;
  while (std::getline(ss, item, ':')) {
    if (item.empty()) continue;
    std::error_code ec;
    if (std::filesystem::exists(item, ec) &&
        std::find(files.begin(), files.end(), item) == files.end()) {
      files.push_back(item);
    }
  }
  if (files.empty()) throw AccessError("kubeconfig " + path_list + " does not exist");
  const auto read = [](const std::string& file) {
    auto text = read_file(file, 16 << 20);
    if (!text) throw AccessError("cannot read kubeconfig " + file);
    return *text;
  };
  if (files.size() == 1) {
    const std::string base_dir = std::filesystem::path(files[0]).parent_path().string();
    return parse_kubeconfig(read(files[0]), files[0], base_dir);
  }

  YAML::Node merged(YAML::NodeType::Map);
  std::string origin;
  for (const auto& file : files) {
    origin += (origin.empty() ? "" : ":") + file;
    YAML::Node root;
    try {
      root = YAML::Load(read(file));
    } catch (const YAML::Exception& e) {
      throw AccessError("kubeconfig " + file + " is not valid YAML: " + e.what());
    }
    if (!root || root.IsNull()) continue;
    if (!root.IsMap()) throw AccessError("kubeconfig " + file + " is not a YAML mapping");
    const std::string base_dir = std::filesystem::path(file).parent_path().string();
    if (scalar(merged, "current-context").empty() && !scalar(root, "current-context").empty()) {
      merged["current-context"] = scalar(root, "current-context");
    }
    for (const auto& [list_key, item_key] :
         {std::pair{"clusters", "cluster"}, std::pair{"users", "user"},
          std::pair{"contexts", "context"}}) {
      const YAML::Node list = root[list_key];
      if (!list || !list.IsSequence()) continue;
      YAML::Node out = merged[list_key];
      for (const auto& entry : list) {
        const std::string name = scalar(entry, "name");
        if (name.empty() || named_entry(merged, list_key, item_key, name)) continue;
        YAML::Node copy = YAML::Clone(entry);
        absolutize(copy[item_key], base_dir);
        out.push_back(copy);
      }
    }
  }
  return parse_kubeconfig(YAML::Dump(merged), origin, "");
}

ClusterAccess load_in_cluster(const InClusterPaths& paths) {
  const std::string host = paths.service_host.value_or(env_or_empty("KUBERNETES_SERVICE_HOST"));
  const std::string port = paths.service_port.value_or(env_or_empty("KUBERNETES_SERVICE_PORT"));
  if (host.empty() || port.empty()) {
    throw AccessError(
        "no Kubernetes API configured: no kubeconfig was given (--kubeconfig, KUBECONFIG or "
        "sources.kubernetes.kubeconfig) and KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT are "
        "not set (not running in a cluster)");
  }
  ClusterAccess a;
  a.origin = "in-cluster";
  const bool ipv6 = host.find(':') != std::string::npos;
  a.server = parse_server_url("https://" + (ipv6 ? "[" + host + "]" : host) + ":" + port);
  if (!read_file(paths.token_file)) {
    throw AccessError("in-cluster: cannot read the service-account token " + paths.token_file +
                      " (is automountServiceAccountToken disabled?)");
  }
  a.token_file = paths.token_file;
  std::error_code ec;
  if (!std::filesystem::exists(paths.ca_file, ec)) {
    throw AccessError("in-cluster: the service-account CA " + paths.ca_file + " does not exist");
  }
  a.ca_file = paths.ca_file;
  return a;
}

ClusterAccess resolve_cluster_access(const KubernetesConfig& config, const InClusterPaths& paths) {
  if (!config.kubeconfig.empty()) return load_kubeconfig(config.kubeconfig);
  return load_in_cluster(paths);
}

}  // namespace mx::kube
