// The binary with --web.config.file: an invalid web config stops the start with exit code 2
// naming the key, like the main config; without the flag nothing changes.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "support/process.h"

namespace mx {
namespace {

using testing::ChildProcess;

std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "/" + std::to_string(::getpid()) + "-" + name;
}

std::string run_until_exit(const std::vector<std::string>& extra, int& code) {
  std::vector<std::string> argv = {MX_EXPORTER_BINARY, "--web.listen-address=127.0.0.1:0"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  ChildProcess p(argv, temp_path("web-config-exit.log"));
  const auto exit_code = p.wait_exit(std::chrono::seconds(30));
  code = exit_code.value_or(-1);
  return p.output();
}

TEST(ExporterWebConfig, UnknownKeyOrBadValueExitsWith2NamingTheKey) {
  const std::string path = temp_path("web.yml");
  std::ofstream(path) << "tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n"
                         "  client_auth: RequireAndVerifyClientCert\n";
  int code = 0;
  auto out = run_until_exit({"--web.config.file=" + path}, code);
  EXPECT_EQ(code, 2) << out;
  EXPECT_NE(out.find("tls_server_config.client_auth"), std::string::npos) << out;

  std::ofstream(path) << "basic_auth_users:\n  prometheus: hunter2\n";
  out = run_until_exit({"--web.config.file", path}, code);
  EXPECT_EQ(code, 2) << out;
  EXPECT_NE(out.find("basic_auth_users.prometheus"), std::string::npos) << out;
  EXPECT_EQ(out.find("hunter2"), std::string::npos) << "a secret reached the log";

  out = run_until_exit({"--web.config.file=" + temp_path("missing.yml")}, code);
  EXPECT_EQ(code, 2) << out;

  // The YAML config's web.config_file works the same.
  const std::string config = temp_path("exporter.yaml");
  std::ofstream(config) << "web:\n  config_file: " << path << "\n";
  out = run_until_exit({"--config=" + config}, code);
  EXPECT_EQ(code, 2) << out;
  EXPECT_NE(out.find("basic_auth_users.prometheus"), std::string::npos) << out;
}

}  // namespace
}  // namespace mx
