// Exec credential plugins (kubeconfig users.user.exec): the kubeconfig rules, the ExecCredential
// a plugin prints, running a process, and the Kubernetes source against the fake API server
// with a fake plugin script: v1 and v1beta1, renewal on expiry and on 401, a failing plugin.
#include "sources/kubernetes/exec_credential.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/base64.h"
#include "common/log.h"
#include "fake_kube_api.h"
#include "source_fixture.h"
#include "sources/kubernetes/cluster_access.h"
#include "support/temp_dir.h"

namespace mx::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr const char* kV1 = "client.authentication.k8s.io/v1";
constexpr const char* kV1beta1 = "client.authentication.k8s.io/v1beta1";
constexpr const char* kCrd = "modal-operator.io/v1alpha1";

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int line_count(const std::string& path) {
  const std::string text = slurp(path);
  return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

std::string rfc3339(std::chrono::system_clock::time_point t) {
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string credential(const std::string& api_version, const std::string& token,
                       std::optional<std::chrono::system_clock::time_point> expires = {}) {
  json status{{"token", token}};
  if (expires) status["expirationTimestamp"] = rfc3339(*expires);
  return json{{"apiVersion", api_version}, {"kind", "ExecCredential"}, {"status", status}}.dump();
}

json modal_job(const std::string& name) {
  return {{"metadata", {{"name", name}, {"namespace", "default"}}},
          {"spec", {{"image", "python:3.11"}}},
          {"status", {{"phase", "Running"}}}};
}

// --- kubeconfig rules --------------------------------------------------------------------------

std::string base64_ca() {
  return base64::encode("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
}

std::string kubeconfig_with_exec(const std::string& exec_yaml) {
  return "clusters:\n"
         "- name: c\n"
         "  cluster:\n"
         "    server: https://10.0.0.1:6443\n"
         "    tls-server-name: api.example\n"
         "    certificate-authority-data: " +
         base64_ca() +
         "\n"
         "    extensions:\n"
         "    - name: client.authentication.k8s.io/exec\n"
         "      extension:\n"
         "        audience: sts\n"
         "contexts:\n"
         "- name: x\n"
         "  context: {cluster: c, user: u}\n"
         "current-context: x\n"
         "users:\n"
         "- name: u\n"
         "  user:\n"
         "    exec:\n" +
         exec_yaml;
}

TEST(ExecKubeconfig, ParsesCommandArgsEnvAndClusterInfo) {
  const auto a =
      kube::parse_kubeconfig(kubeconfig_with_exec("      apiVersion: " + std::string(kV1) +
                                                  "\n"
                                                  "      command: bin/plugin\n"
                                                  "      args: [get-token, --x]\n"
                                                  "      env:\n"
                                                  "      - {name: A, value: b}\n"
                                                  "      interactiveMode: Never\n"
                                                  "      provideClusterInfo: true\n"
                                                  "      installHint: get it\n"),
                             "test", "/etc/kube");
  ASSERT_TRUE(a.exec.has_value());
  EXPECT_EQ(a.exec->command, "/etc/kube/bin/plugin");  // relative to the kubeconfig, as kubectl
  EXPECT_EQ(a.exec->args, (std::vector<std::string>{"get-token", "--x"}));
  ASSERT_EQ(a.exec->env.size(), 1u);
  EXPECT_EQ(a.exec->env[0], (std::pair<std::string, std::string>{"A", "b"}));
  EXPECT_EQ(a.exec->install_hint, "get it");
  const json info = json::parse(a.exec->exec_info);
  EXPECT_EQ(info["apiVersion"], kV1);
  EXPECT_EQ(info["kind"], "ExecCredential");
  EXPECT_EQ(info["spec"]["interactive"], false);
  EXPECT_EQ(info["spec"]["cluster"]["server"], "https://10.0.0.1:6443");
  EXPECT_EQ(info["spec"]["cluster"]["tlsServerName"], "api.example");
  EXPECT_EQ(info["spec"]["cluster"]["certificateAuthorityData"], base64_ca());
  EXPECT_EQ(info["spec"]["cluster"]["config"]["audience"], "sts");
}

TEST(ExecKubeconfig, ClusterInfoOnlyWhenAsked) {
  const auto a = kube::parse_kubeconfig(
      kubeconfig_with_exec("      apiVersion: " + std::string(kV1beta1) + "\n      command: p\n"),
      "test", "");
  ASSERT_TRUE(a.exec.has_value());
  EXPECT_EQ(a.exec->command, "p");  // looked up on PATH
  const json info = json::parse(a.exec->exec_info);
  EXPECT_EQ(info["apiVersion"], kV1beta1);
  EXPECT_EQ(info["spec"]["interactive"], false);
  EXPECT_FALSE(info["spec"].contains("cluster"));
}

TEST(ExecKubeconfig, RefusesWhatCannotRunUnattended) {
  const auto error_of = [](const std::string& exec_yaml) {
    try {
      kube::parse_kubeconfig(kubeconfig_with_exec(exec_yaml), "test", "");
    } catch (const kube::AccessError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(error_of("      apiVersion: " + std::string(kV1) +
                     "\n      command: p\n      interactiveMode: Always\n")
                .find("interactiveMode Always needs a terminal"),
            std::string::npos);
  EXPECT_NE(error_of("      apiVersion: " + std::string(kV1) + "\n      command: p\n")
                .find("interactiveMode must be set"),
            std::string::npos);
  EXPECT_NE(error_of("      apiVersion: client.authentication.k8s.io/v1alpha1\n      command: p\n")
                .find("is not supported"),
            std::string::npos);
  EXPECT_NE(error_of("      apiVersion: " + std::string(kV1beta1) + "\n").find("no command"),
            std::string::npos);
  EXPECT_EQ(error_of("      apiVersion: " + std::string(kV1beta1) +
                     "\n      command: p\n      interactiveMode: IfAvailable\n"),
            "no error");
}

// --- the ExecCredential output -----------------------------------------------------------------

TEST(ExecCredentialOutput, TokenWithExpiry) {
  std::string error;
  auto c = kube::parse_exec_credential(
      R"({"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential",
          "status":{"token":"tok","expirationTimestamp":"2030-01-02T03:04:05Z"}})",
      kV1, error);
  ASSERT_TRUE(c) << error;
  EXPECT_EQ(c->token, "tok");
  ASSERT_TRUE(c->expires.has_value());
  EXPECT_EQ(std::chrono::system_clock::to_time_t(*c->expires), 1893553445);
}

TEST(ExecCredentialOutput, ClientCertificate) {
  std::string error;
  auto c = kube::parse_exec_credential(
      R"({"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential",
          "status":{"clientCertificateData":"CERT","clientKeyData":"KEY"}})",
      kV1beta1, error);
  ASSERT_TRUE(c) << error;
  EXPECT_EQ(c->client_cert_pem, "CERT");
  EXPECT_EQ(c->client_key_pem, "KEY");
  EXPECT_TRUE(c->token.empty());
  EXPECT_FALSE(c->expires.has_value());
}

TEST(ExecCredentialOutput, RefusalsNeverQuoteTheSecret) {
  const auto error_of = [](const std::string& out) {
    std::string error;
    EXPECT_FALSE(kube::parse_exec_credential(out, kV1, error)) << out;
    EXPECT_EQ(error.find("sekrit"), std::string::npos) << error;
    return error;
  };
  EXPECT_NE(error_of("sekrit").find("not a JSON object"), std::string::npos);
  EXPECT_NE(error_of(credential(kV1beta1, "sekrit")).find("apiVersion"), std::string::npos);
  EXPECT_NE(error_of(R"({"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential",
                         "status":{"clientCertificateData":"sekrit"}})")
                .find("without clientKeyData"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential",
                         "status":{}})")
                .find("neither a token"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential",
                         "status":{"token":"sekrit","expirationTimestamp":"soon"}})")
                .find("expirationTimestamp"),
            std::string::npos);
}

// --- running a process -------------------------------------------------------------------------

TEST(RunProcess, PassesArgsAndEnvAndNoStdin) {
  std::atomic<bool> cancel{false};
  auto r = kube::run_process({"/bin/sh", "-c", "echo \"$1 $MX_X\"; cat; echo err >&2", "sh", "arg"},
                             {{"MX_X", "env"}}, 5s, cancel);
  EXPECT_EQ(r.error, "");
  EXPECT_EQ(r.out, "arg env\n");  // cat read /dev/null: nothing
  EXPECT_EQ(r.err, "err\n");
}

TEST(RunProcess, ExitStatusTimeoutAndMissingCommand) {
  std::atomic<bool> cancel{false};
  EXPECT_EQ(kube::run_process({"sh", "-c", "exit 3"}, {}, 5s, cancel).error, "exit status 3");
  const auto start = std::chrono::steady_clock::now();
  // The child's own child keeps the pipe open: the whole process group must die.
  auto r = kube::run_process({"sh", "-c", "sleep 30 & sleep 30"}, {}, 300ms, cancel);
  EXPECT_NE(r.error.find("timeout"), std::string::npos) << r.error;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  EXPECT_NE(kube::run_process({"mx-no-such-plugin"}, {}, 5s, cancel).error.find("not found"),
            std::string::npos);
}

// --- the source with a plugin ------------------------------------------------------------------

class ExecSourceTest : public KubeSourceTestBase {
 protected:
  void SetUp() override {
    api.start();
    runs_file = dir.path() + "/runs";
    response_file = dir.path() + "/response.json";
    plugin = dir.write("plugin.sh",
                       "#!/bin/sh\n"
                       "echo run >> \"$MX_RUNS\"\n"
                       "printf '%s' \"$KUBERNETES_EXEC_INFO\" > \"$MX_DIR/exec_info.json\"\n"
                       "echo \"args: $*\" > \"$MX_DIR/args\"\n"
                       "echo 'plugin diagnostics' >&2\n"
                       "if [ -f \"$MX_DIR/fail\" ]; then exit 3; fi\n"
                       "cat \"$MX_DIR/response.json\"\n");
    std::filesystem::permissions(plugin, std::filesystem::perms::owner_all);
  }

  void TearDown() override {
    stop_source();
    api.stop();
  }

  void write_kubeconfig(const std::string& api_version, const std::string& extra = "") {
    std::string text = slurp(api.write_kubeconfig(dir.path()));
    text = text.substr(0, text.find("users:\n"));
    text +=
        "users:\n"
        "- name: fake\n"
        "  user:\n"
        "    exec:\n"
        "      apiVersion: " +
        api_version +
        "\n"
        "      command: " +
        plugin +
        "\n"
        "      args: [get-token, --cluster, fake]\n"
        "      env:\n"
        "      - {name: MX_RUNS, value: " +
        runs_file +
        "}\n"
        "      - {name: MX_DIR, value: " +
        dir.path() +
        "}\n"
        "      provideClusterInfo: true\n"
        "      installHint: install the fake plugin from the test\n" +
        extra;
    config.kubeconfig = dir.write("kubeconfig.exec", text);
  }

  void respond(const std::string& text) { dir.write("response.json", text); }

  void start_and_sync() {
    start_source();
    ASSERT_TRUE(run_until(io, [&] { return !sink.successes.empty(); })) << logs.all();
    ASSERT_TRUE(run_until(io, [&] { return api.open_watch_count() == 4; }))
        << api.open_watch_count();
  }

  std::string uid_of(const json& object) { return object["metadata"]["uid"].get<std::string>(); }

  FakeKubeApi api;
  TempDir dir;
  std::string plugin;
  std::string runs_file;
  std::string response_file;
};

TEST_F(ExecSourceTest, V1PluginTokenSyncsWithOneRun) {
  api.set_token("exec-token-v1");
  write_kubeconfig(kV1, "      interactiveMode: Never\n");
  respond(credential(kV1, "exec-token-v1"));
  const auto job = api.upsert(kCrd, "modaljobs", modal_job("train"));
  start_and_sync();
  EXPECT_EQ(sink.jobs.count(uid_of(job)), 1u);
  EXPECT_EQ(line_count(runs_file), 1);  // every informer shares the one credential
  EXPECT_EQ(slurp(dir.path() + "/args"), "args: get-token --cluster fake\n");
  const json info = json::parse(slurp(dir.path() + "/exec_info.json"));
  EXPECT_EQ(info["apiVersion"], kV1);
  EXPECT_EQ(info["spec"]["interactive"], false);
  EXPECT_EQ(info["spec"]["cluster"]["server"], api.url());
  EXPECT_EQ(logs.count("exec-token-v1"), 0) << logs.all();
}

// kubectl reads the same kubeconfig the same way: it runs the plugin and lists with its token.
TEST_F(ExecSourceTest, KubectlAgreesWithTheSameKubeconfig) {
  api.set_token("shared-token");
  write_kubeconfig(kV1, "      interactiveMode: IfAvailable\n");
  respond(credential(kV1, "shared-token"));
  api.upsert("v1", "pods",
             json{{"metadata", {{"name", "seen-by-both"}, {"namespace", "default"}}}});
  std::string out;
  const auto code = kubectl(config.kubeconfig, dir.path() + "/kcache", "get pods -A -o name", out);
  if (!code) GTEST_SKIP() << "kubectl is not installed";
  EXPECT_EQ(*code, 0) << out;
  EXPECT_NE(out.find("pod/seen-by-both"), std::string::npos) << out;
  const int kubectl_runs = line_count(runs_file);  // one per kubectl client it builds
  EXPECT_GE(kubectl_runs, 1);
  start_and_sync();
  EXPECT_EQ(line_count(runs_file), kubectl_runs + 1);
}

TEST_F(ExecSourceTest, V1beta1PluginTokenSyncs) {
  api.set_token("exec-token-beta");
  write_kubeconfig(kV1beta1);
  respond(credential(kV1beta1, "exec-token-beta"));
  start_and_sync();
  EXPECT_EQ(line_count(runs_file), 1);
  EXPECT_EQ(logs.count("exec-token-beta"), 0) << logs.all();
}

TEST_F(ExecSourceTest, PluginStderrIsLoggedAtDebugLevel) {
  log::configure(LogLevel::debug, LogFormat::logfmt);
  api.set_token("t");
  write_kubeconfig(kV1beta1);
  respond(credential(kV1beta1, "t"));
  start_and_sync();
  log::configure(LogLevel::info, LogFormat::logfmt);
  EXPECT_GE(logs.count("plugin diagnostics"), 1) << logs.all();
}

TEST_F(ExecSourceTest, ExpiredCredentialRunsThePluginAgain) {
  api.set_token("short-lived");
  write_kubeconfig(kV1, "      interactiveMode: IfAvailable\n");
  // Whole seconds in the timestamp: at most 3 s from now, at least 2 s.
  respond(credential(kV1, "short-lived", std::chrono::system_clock::now() + 3s));
  start_and_sync();
  EXPECT_EQ(line_count(runs_file), 1);
  respond(credential(kV1, "short-lived", std::chrono::system_clock::now() + 1h));
  run_for(io, 3100ms);
  api.end_open_watches();  // the next watch requests need a credential
  ASSERT_TRUE(run_until(io, [&] { return line_count(runs_file) == 2; })) << logs.all();
  const auto job = api.upsert(kCrd, "modaljobs", modal_job("after-renewal"));
  ASSERT_TRUE(run_until(io, [&] { return sink.jobs.count(uid_of(job)) == 1; })) << logs.all();
  EXPECT_EQ(logs.count("rejected"), 0) << logs.all();  // renewed before the API refused it
  EXPECT_EQ(line_count(runs_file), 2);
}

TEST_F(ExecSourceTest, UnauthorizedRunsThePluginAgainOnce) {
  api.set_token("first-token");
  write_kubeconfig(kV1, "      interactiveMode: Never\n");
  respond(credential(kV1, "first-token"));
  start_and_sync();
  api.set_token("second-token");
  respond(credential(kV1, "second-token"));
  api.end_open_watches();  // every informer's next request gets a 401
  const auto job = api.upsert(kCrd, "modaljobs", modal_job("after-401"));
  ASSERT_TRUE(run_until(io, [&] { return sink.jobs.count(uid_of(job)) == 1; })) << logs.all();
  run_for(io, 200ms);
  EXPECT_EQ(line_count(runs_file), 2) << logs.all();  // four 401s, one new run
  EXPECT_EQ(logs.count("first-token"), 0) << logs.all();
  EXPECT_EQ(logs.count("second-token"), 0) << logs.all();
}

TEST_F(ExecSourceTest, FailingPluginTakesOnlyTheSourceDownAndNamesTheFix) {
  write_kubeconfig(kV1, "      interactiveMode: Never\n");
  dir.write("fail", "");
  start_source();
  ASSERT_TRUE(run_until(io, [&] { return sink.failures > 0; })) << logs.all();
  ASSERT_TRUE(run_until(io, [&] { return logs.count("exec credential plugin failed") > 0; }));
  EXPECT_TRUE(sink.successes.empty());
  EXPECT_GE(logs.count(plugin), 1) << logs.all();
  EXPECT_GE(logs.count("install the fake plugin from the test"), 1) << logs.all();
  EXPECT_GE(logs.count("exit status 3"), 1) << logs.all();
  // Failures are retried with a backoff, not once per informer request.
  run_for(io, 500ms);
  EXPECT_EQ(line_count(runs_file), 1) << logs.all();

  // Fixed (the plugin's backoff starts at 1 s): the source comes up.
  api.set_token("late-token");
  respond(credential(kV1, "late-token"));
  std::filesystem::remove(dir.path() + "/fail");
  ASSERT_TRUE(run_until(io, [&] { return !sink.successes.empty(); })) << logs.all();
  EXPECT_EQ(line_count(runs_file), 2);
}

TEST_F(ExecSourceTest, BadOutputNeverLogsTheToken) {
  write_kubeconfig(kV1, "      interactiveMode: Never\n");
  respond(credential(kV1beta1, "leaked-if-logged"));
  start_source();
  ASSERT_TRUE(run_until(io, [&] { return logs.count("exec credential plugin failed") > 0; }));
  EXPECT_GE(logs.count("apiVersion"), 1) << logs.all();
  EXPECT_EQ(logs.count("leaked-if-logged"), 0) << logs.all();
}

TEST_F(ExecSourceTest, PluginClientCertificateAuthenticates) {
  api.set_token("a-token-nobody-has");  // only the certificate can get in
  write_kubeconfig(kV1beta1);
  respond(json{
      {"apiVersion", kV1beta1},
      {"kind", "ExecCredential"},
      {"status",
       {{"clientCertificateData", api.client_cert_pem()}, {"clientKeyData", api.client_key_pem()}}}}
              .dump());
  start_and_sync();
  EXPECT_EQ(line_count(runs_file), 1);
  EXPECT_EQ(logs.count("PRIVATE KEY"), 0) << logs.all();
}

TEST_F(ExecSourceTest, UnusableClientCertificateIsNamedNotQuoted) {
  write_kubeconfig(kV1, "      interactiveMode: Never\n");
  respond(json{{"apiVersion", kV1},
               {"kind", "ExecCredential"},
               {"status", {{"clientCertificateData", "cert-junk"}, {"clientKeyData", "key-junk"}}}}
              .dump());
  start_source();
  ASSERT_TRUE(run_until(io, [&] { return logs.count("unusable client certificate") > 0; }))
      << logs.all();
  EXPECT_EQ(logs.count("key-junk"), 0) << logs.all();
  EXPECT_TRUE(sink.successes.empty());
}

TEST_F(ExecSourceTest, StopKillsASlowPlugin) {
  dir.write("plugin.sh", "#!/bin/sh\nexec sleep 60\n");
  std::filesystem::permissions(plugin, std::filesystem::perms::owner_all);
  write_kubeconfig(kV1, "      interactiveMode: Never\n");
  start_source();
  run_for(io, 300ms);
  const auto start_stop = std::chrono::steady_clock::now();
  source->stop();
  run_for(io, 50ms);
  source.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - start_stop, 5s);
}

}  // namespace
}  // namespace mx::testing
