// kubeconfig and in-cluster configuration: the variants real clusters hand out, and the
// refusals that must be clear (auth providers, impersonation, proxies, missing pieces).
#include "sources/kubernetes/cluster_access.h"

#include <gtest/gtest.h>

#include <filesystem>

#include <boost/asio/io_context.hpp>

#include "common/base64.h"
#include "sources/kubernetes/api.h"
#include "support/temp_dir.h"
#include "test_ca.h"

namespace mx::kube {
namespace {

namespace fs = std::filesystem;

using mx::testing::TempDir;

std::string kubeconfig(const std::string& cluster_extra, const std::string& user_body,
                       const std::string& server = "https://10.0.0.1:6443") {
  return "apiVersion: v1\nkind: Config\ncurrent-context: ctx\n"
         "contexts:\n- name: other\n  context: {cluster: nope, user: nope}\n"
         "- name: ctx\n  context:\n    cluster: c1\n    user: u1\n"
         "clusters:\n- name: c1\n  cluster:\n    server: " +
         server + "\n" + cluster_extra + "users:\n- name: u1\n  user:\n" + user_body;
}

TEST(ServerUrl, Forms) {
  auto a = parse_server_url("https://api.example.com:6443");
  EXPECT_TRUE(a.tls);
  EXPECT_EQ(a.host, "api.example.com");
  EXPECT_EQ(a.port, "6443");
  EXPECT_EQ(a.base_path, "");
  a = parse_server_url("http://127.0.0.1/prefix/");
  EXPECT_FALSE(a.tls);
  EXPECT_EQ(a.port, "80");
  EXPECT_EQ(a.base_path, "/prefix");
  a = parse_server_url("https://[::1]:8443");
  EXPECT_EQ(a.host, "::1");
  EXPECT_EQ(a.port, "8443");
  a = parse_server_url("https://kubernetes.default.svc");
  EXPECT_EQ(a.port, "443");
  for (const char* bad : {"ftp://x", "api:6443", "https://", "https://host:abc",
                          "https://host:99999", "https://[::1"}) {
    EXPECT_THROW(parse_server_url(bad), AccessError) << bad;
  }
}

TEST(Kubeconfig, TokenAndInlineCa) {
  auto a = parse_kubeconfig(
      kubeconfig("    certificate-authority-data: " + base64::encode("CA PEM") + "\n",
                 "    token: abc123\n"),
      "test", "");
  EXPECT_EQ(a.server.host, "10.0.0.1");
  EXPECT_EQ(a.server.port, "6443");
  EXPECT_EQ(a.ca_pem, "CA PEM");
  EXPECT_EQ(a.token, "abc123");
  EXPECT_FALSE(a.insecure_skip_tls_verify);
  EXPECT_NE(a.origin.find("ctx"), std::string::npos);
}

TEST(Kubeconfig, FilesRelativeToTheKubeconfig) {
  TempDir dir;
  dir.write("ca.crt", "CA");
  dir.write("client.crt", "CERT");
  dir.write("client.key", "KEY");
  dir.write("token", "file-token\n");
  const std::string path = dir.write(
      "config", kubeconfig("    certificate-authority: ca.crt\n",
                           "    client-certificate: client.crt\n    client-key: client.key\n"
                           "    tokenFile: token\n"));
  auto a = load_kubeconfig(path);
  EXPECT_EQ(a.ca_file, (fs::path(dir.path()) / "ca.crt").string());
  EXPECT_EQ(a.client_cert_pem, "CERT");
  EXPECT_EQ(a.client_key_pem, "KEY");
  EXPECT_EQ(a.token_file, (fs::path(dir.path()) / "token").string());
}

TEST(Kubeconfig, ClientCertificateData) {
  auto a =
      parse_kubeconfig(kubeconfig("", "    client-certificate-data: " + base64::encode("CERT") +
                                          "\n    client-key-data: " + base64::encode("KEY") + "\n"),
                       "test", "");
  EXPECT_EQ(a.client_cert_pem, "CERT");
  EXPECT_EQ(a.client_key_pem, "KEY");
  EXPECT_THROW(
      parse_kubeconfig(kubeconfig("", "    client-certificate-data: " + base64::encode("C") + "\n"),
                       "test", ""),
      AccessError);
}

TEST(Kubeconfig, InsecureSkipOnlyWhenTrue) {
  EXPECT_TRUE(parse_kubeconfig(kubeconfig("    insecure-skip-tls-verify: true\n", "    token: t\n"),
                               "t", "")
                  .insecure_skip_tls_verify);
  EXPECT_FALSE(parse_kubeconfig(
                   kubeconfig("    insecure-skip-tls-verify: false\n", "    token: t\n"), "t", "")
                   .insecure_skip_tls_verify);
  EXPECT_FALSE(parse_kubeconfig(
                   kubeconfig("    insecure-skip-tls-verify: maybe\n", "    token: t\n"), "t", "")
                   .insecure_skip_tls_verify);
}

TEST(Kubeconfig, ExecPluginIsUsedAuthProviderIsRefusedClearly) {
  const auto a = parse_kubeconfig(kubeconfig("",
                                             "    exec:\n      apiVersion: "
                                             "client.authentication.k8s.io/v1\n"
                                             "      command: aws\n      interactiveMode: Never\n"),
                                  "test", "");
  ASSERT_TRUE(a.exec.has_value());
  EXPECT_EQ(a.exec->command, "aws");
  // A static credential next to the plugin wins, as the plugin would not be needed.
  EXPECT_FALSE(parse_kubeconfig(kubeconfig("",
                                           "    token: t\n    exec:\n      apiVersion: "
                                           "client.authentication.k8s.io/v1\n"
                                           "      command: aws\n      interactiveMode: Never\n"),
                                "test", "")
                   .exec.has_value());
  try {
    parse_kubeconfig(kubeconfig("", "    auth-provider:\n      name: gcp\n"), "test", "");
    FAIL() << "expected AccessError";
  } catch (const AccessError& e) {
    EXPECT_NE(std::string(e.what()).find("auth-provider"), std::string::npos);
  }
}

TEST(Kubeconfig, UnsupportedFieldsAreRefusedByName) {
  const auto message = [](const std::string& cluster_extra, const std::string& user_body) {
    try {
      parse_kubeconfig(kubeconfig(cluster_extra, user_body), "test", "");
    } catch (const AccessError& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  for (const char* key : {"username", "password", "as", "as-uid", "as-groups", "as-user-extra"}) {
    const std::string m = message("", "    token: t\n    " + std::string(key) + ": x\n");
    EXPECT_NE(m.find(std::string("sets ") + key + ", which modal-exporter does not support"),
              std::string::npos)
        << m;
  }
  EXPECT_EQ(message("    proxy-url: http://proxy:3128\n", "    token: t\n"), "accepted");
  const std::string socks =
      message("    proxy-url: socks5://u:secret@proxy:1080\n", "    token: t\n");
  EXPECT_NE(socks.find("proxy-url: SOCKS5 proxies (socks5://) are not supported"),
            std::string::npos)
      << socks;
  EXPECT_EQ(socks.find("secret"), std::string::npos) << socks;
  EXPECT_EQ(message("    disable-compression: true\n", "    token: t\n"), "accepted");
}

TEST(Kubeconfig, BrokenDocumentsNameTheProblem) {
  auto message = [](const std::string& text) {
    try {
      parse_kubeconfig(text, "cfg", "");
    } catch (const AccessError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message("{{{").find("not valid YAML"), std::string::npos);
  EXPECT_NE(message("- a\n- b\n").find("not a YAML mapping"), std::string::npos);
  EXPECT_NE(message("clusters: []\n").find("no current-context"), std::string::npos);
  EXPECT_NE(message("current-context: x\n").find("context \"x\" is not defined"),
            std::string::npos);
  EXPECT_NE(message("current-context: x\ncontexts:\n- name: x\n  context: {cluster: c}\n")
                .find("cluster \"c\""),
            std::string::npos);
  EXPECT_NE(message("current-context: x\ncontexts:\n- name: x\n  context: {cluster: c}\n"
                    "clusters:\n- name: c\n  cluster: {}\n")
                .find("has no server"),
            std::string::npos);
  EXPECT_NE(message(kubeconfig("    certificate-authority-data: '!!!'\n", "    token: t\n"))
                .find("not valid base64"),
            std::string::npos);
  EXPECT_NE(message(kubeconfig("", "    tokenFile: /nonexistent/token\n")).find("tokenFile"),
            std::string::npos);
  EXPECT_THROW(load_kubeconfig("/nonexistent/kubeconfig"), AccessError);
}

TEST(Kubeconfig, PathListUsesFirstExistingFile) {
  TempDir dir;
  const std::string path = dir.write("config", kubeconfig("", "    token: t\n"));
  auto a = load_kubeconfig("/nonexistent/one:" + path);
  EXPECT_EQ(a.token, "t");
}

// Several files are merged as kubectl merges them: first definition (by name) and first
// current-context win; relative paths stay relative to the file that holds them.
TEST(Kubeconfig, PathListMergesFilesFirstDefinitionWins) {
  TempDir first;
  TempDir second;
  const std::string a =
      first.write("config",
                  "current-context: prod\n"
                  "contexts:\n- name: prod\n  context: {cluster: prod-cluster, user: admin}\n"
                  "users:\n- name: admin\n  user:\n    tokenFile: token\n");
  first.write("token", "first-token");
  second.write("ca.crt", "CA FROM SECOND");
  const std::string b = second.write(
      "config",
      "current-context: dev\n"
      "clusters:\n- name: prod-cluster\n  cluster:\n    server: https://10.1.2.3:6443\n"
      "    certificate-authority: ca.crt\n"
      "contexts:\n- name: dev\n  context: {cluster: prod-cluster, user: dev}\n"
      "users:\n- name: admin\n  user:\n    token: second-token-loses\n");
  const auto merged = load_kubeconfig("/nonexistent:" + a + ":" + b);
  EXPECT_EQ(merged.server.host, "10.1.2.3");
  EXPECT_EQ(merged.ca_file, (fs::path(second.path()) / "ca.crt").string());
  EXPECT_EQ(merged.token_file, (fs::path(first.path()) / "token").string());
  EXPECT_TRUE(merged.token.empty());
  EXPECT_NE(merged.origin.find("(context prod)"), std::string::npos) << merged.origin;
}

TEST(InCluster, ReadsServiceAccount) {
  TempDir dir;
  InClusterPaths paths;
  paths.token_file = dir.write("token", "sa-token");
  paths.ca_file = dir.write("ca.crt", "CA");
  paths.service_host = "10.96.0.1";
  paths.service_port = "443";
  auto a = load_in_cluster(paths);
  EXPECT_EQ(a.origin, "in-cluster");
  EXPECT_EQ(a.server.host, "10.96.0.1");
  EXPECT_TRUE(a.server.tls);
  EXPECT_EQ(a.token_file, paths.token_file);
  EXPECT_EQ(a.ca_file, paths.ca_file);

  paths.service_host = "fd00::1";
  EXPECT_EQ(load_in_cluster(paths).server.host, "fd00::1");
}

TEST(InCluster, ClearErrorsWhenNotInACluster) {
  InClusterPaths paths;
  paths.service_host = "";
  paths.service_port = "";
  try {
    load_in_cluster(paths);
    FAIL();
  } catch (const AccessError& e) {
    EXPECT_NE(std::string(e.what()).find("KUBERNETES_SERVICE_HOST"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("kubeconfig"), std::string::npos);
  }
  TempDir dir;
  paths.service_host = "10.0.0.1";
  paths.service_port = "443";
  paths.token_file = dir.path() + "/missing-token";
  EXPECT_THROW(load_in_cluster(paths), AccessError);
  paths.token_file = dir.write("token", "t");
  paths.ca_file = dir.path() + "/missing-ca";
  EXPECT_THROW(load_in_cluster(paths), AccessError);
}

TEST(Resolve, KubeconfigWinsOverInCluster) {
  TempDir dir;
  KubernetesConfig config;
  config.kubeconfig = dir.write("config", kubeconfig("", "    token: from-kubeconfig\n"));
  InClusterPaths paths;
  paths.service_host = "";
  EXPECT_EQ(resolve_cluster_access(config, paths).token, "from-kubeconfig");
  config.kubeconfig.clear();
  EXPECT_THROW(resolve_cluster_access(config, paths), AccessError);
}

TEST(TokenSource, ReloadsTheFile) {
  TempDir dir;
  const std::string file = dir.write("token", "one\n");
  TokenSource tokens("", file, std::chrono::hours(1));
  EXPECT_EQ(tokens.current(), "one");
  dir.write("token", "two");
  EXPECT_EQ(tokens.current(), "one");  // not due yet
  EXPECT_TRUE(tokens.reload());
  EXPECT_EQ(tokens.current(), "two");
  EXPECT_FALSE(tokens.reload());
  fs::remove(file);
  EXPECT_FALSE(tokens.reload());  // a vanished file keeps the last token
  EXPECT_EQ(tokens.current(), "two");

  TokenSource periodic("", dir.write("token2", "a"), std::chrono::milliseconds(0));
  dir.write("token2", "b");
  EXPECT_EQ(periodic.current(), "b");
}

TEST(ApiSessionTls, RejectsUnusableMaterialClearly) {
  boost::asio::io_context io;
  ClusterAccess a;
  a.origin = "test";
  a.server = parse_server_url("https://127.0.0.1:1");
  a.ca_pem = "not a certificate";
  try {
    ApiSession session(io.get_executor(), a, std::chrono::minutes(1));
    ADD_FAILURE() << "a CA that is not PEM was accepted";
  } catch (const AccessError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("test: the certificate authority data", 0), 0u)
        << e.what();
  }
  // Over plain http:// the TLS material is not used, so it is not checked either.
  a.server = parse_server_url("http://127.0.0.1:1");
  EXPECT_NO_THROW(ApiSession(io.get_executor(), a, std::chrono::minutes(1)));
  a.server = parse_server_url("https://127.0.0.1:1");
  a.ca_pem.clear();
  a.ca_file = "/nonexistent/ca.crt";
  EXPECT_THROW(ApiSession(io.get_executor(), a, std::chrono::minutes(1)), AccessError);

  const auto tls = mx::testing::kube::make_test_tls();
  a.ca_file.clear();
  a.ca_pem = tls.ca_pem;
  a.client_cert_pem = tls.server_cert_pem;
  a.client_key_pem = tls.server_key_pem;
  EXPECT_NO_THROW(ApiSession(io.get_executor(), a, std::chrono::minutes(1)));
  a.client_key_pem = "garbage";
  EXPECT_THROW(ApiSession(io.get_executor(), a, std::chrono::minutes(1)), AccessError);
}

}  // namespace
}  // namespace mx::kube
