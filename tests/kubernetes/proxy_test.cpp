// The Kubernetes source through a real CONNECT proxy (Debian's tinyproxy, started here on
// 127.0.0.1): the kubeconfig's proxy-url, and HTTPS_PROXY / NO_PROXY from the environment (which
// Go's rules apply to non-loopback hosts only, so that run uses a non-loopback address of the
// machine). tinyproxy demands the credentials of the proxy URL (BasicAuth).
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <boost/asio/ip/tcp.hpp>

#include "fake_kube_api.h"
#include "source_fixture.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace mx::testing {
namespace {

using namespace std::chrono_literals;

constexpr const char* kProxyUser = "mx";
constexpr const char* kProxyPassword = "pr0xy-s3cret";

std::string tinyproxy_binary() {
  for (const char* p : {"/usr/bin/tinyproxy", "/usr/sbin/tinyproxy"}) {
    if (std::filesystem::exists(p)) return p;
  }
  return {};
}

// The first IPv4 address of an interface that is up and not loopback; "" when there is none.
std::string non_loopback_ipv4() {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return {};
  std::string found;
  for (ifaddrs* i = list; i != nullptr && found.empty(); i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET) continue;
    if ((i->ifa_flags & IFF_UP) == 0 || (i->ifa_flags & IFF_LOOPBACK) != 0) continue;
    char text[INET_ADDRSTRLEN];
    const auto* in = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
    if (::inet_ntop(AF_INET, &in->sin_addr, text, sizeof text) != nullptr) found = text;
  }
  ::freeifaddrs(list);
  return found;
}

bool accepts_connections(unsigned short port) {
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket socket(io);
  boost::system::error_code ec;
  socket.connect({boost::asio::ip::make_address("127.0.0.1"), port}, ec);
  return !ec;
}

class ProxyTest : public KubeSourceTestBase {
 protected:
  void TearDown() override {
    stop_source();
    api->stop();
    for (const char* name : {"HTTPS_PROXY", "NO_PROXY"}) ::unsetenv(name);
  }

  // Starts tinyproxy on an ephemeral port, allowing CONNECT to the fake API's port only.
  void start_proxy() {
    const std::string binary = tinyproxy_binary();
    ASSERT_FALSE(binary.empty())
        << "tinyproxy is not installed; scripts/install-deps.sh --test installs it";
    proxy_port = closed_port();
    proxy_log = dir.path() + "/tinyproxy.log";
    std::ostringstream conf;
    conf << "Port " << proxy_port << "\n"
         << "Listen 127.0.0.1\n"
         << "Timeout 60\n"
         << "LogFile \"" << proxy_log << "\"\n"
         << "LogLevel Info\n"
         << "MaxClients 50\n"
         << "Allow 127.0.0.1\n"
         << "BasicAuth " << kProxyUser << " " << kProxyPassword << "\n"
         << "ConnectPort " << api->port() << "\n";
    const std::string conf_path = dir.write("tinyproxy.conf", conf.str());
    proxy = std::make_unique<ChildProcess>(std::vector<std::string>{binary, "-d", "-c", conf_path},
                                           dir.path() + "/tinyproxy.out");
    ASSERT_TRUE(wait_until([&] { return accepts_connections(proxy_port); }, 10s))
        << proxy->output() << read_file(proxy_log);
  }

  std::string proxy_url(const std::string& password = kProxyPassword) const {
    return "http://" + std::string(kProxyUser) + ":" + password +
           "@127.0.0.1:" + std::to_string(proxy_port);
  }

  // The fake's kubeconfig with `server` replaced and `cluster_extra` lines added to the cluster.
  void write_kubeconfig(const std::string& server, const std::string& cluster_extra) {
    std::string text = read_file(api->write_kubeconfig(dir.path()));
    const auto server_line = text.find("    server: ");
    const auto line_end = text.find('\n', server_line);
    text.replace(server_line, line_end - server_line, "    server: " + server);
    text.insert(text.find('\n', server_line) + 1, cluster_extra);
    config.kubeconfig = dir.write("kubeconfig.proxy", text);
  }

  void start_and_sync() {
    start_source();
    ASSERT_TRUE(run_until(io, [&] { return !sink.successes.empty(); }))
        << logs.all() << read_file(proxy_log);
  }

  std::unique_ptr<FakeKubeApi> api = std::make_unique<FakeKubeApi>();
  TempDir dir;
  unsigned short proxy_port = 0;
  std::string proxy_log;
  std::unique_ptr<ChildProcess> proxy;
};

TEST_F(ProxyTest, KubeconfigProxyUrlTunnelsThroughTinyproxy) {
  api->start();
  ASSERT_NO_FATAL_FAILURE(start_proxy());
  // Loopback goes direct under the environment's rules; proxy-url applies to every request.
  write_kubeconfig(api->url(), "    proxy-url: " + proxy_url() + "\n");
  ASSERT_NO_FATAL_FAILURE(start_and_sync());
  const std::string log = read_file(proxy_log);
  EXPECT_NE(log.find("): CONNECT 127.0.0.1:" + std::to_string(api->port())), std::string::npos)
      << log;
  EXPECT_EQ(logs.count(kProxyPassword), 0) << logs.all();
}

TEST_F(ProxyTest, KubectlGoesThroughTheSameProxy) {
  api->start();
  ASSERT_NO_FATAL_FAILURE(start_proxy());
  write_kubeconfig(api->url(), "    proxy-url: " + proxy_url() + "\n");
  std::string out;
  const auto code = kubectl(config.kubeconfig, dir.path() + "/kcache", "get pods -A -o name", out);
  if (!code) GTEST_SKIP() << "kubectl is not installed";
  EXPECT_EQ(*code, 0) << out;
  const std::string log = read_file(proxy_log);
  EXPECT_NE(log.find("): CONNECT 127.0.0.1:" + std::to_string(api->port())), std::string::npos)
      << log;
}

TEST_F(ProxyTest, WrongProxyPasswordIsNamedAndNotLogged) {
  api->start();
  ASSERT_NO_FATAL_FAILURE(start_proxy());
  write_kubeconfig(api->url(), "    proxy-url: " + proxy_url("wrong-pass") + "\n");
  start_source();
  ASSERT_TRUE(run_until(io, [&] { return logs.count("proxy authentication required") > 0; }))
      << logs.all();
  EXPECT_TRUE(sink.successes.empty());
  EXPECT_EQ(logs.count("wrong-pass"), 0) << logs.all();
}

TEST_F(ProxyTest, HttpsProxyEnvironmentAndNoProxy) {
  const std::string address = non_loopback_ipv4();
  if (address.empty()) GTEST_SKIP() << "no non-loopback IPv4 address to reach the fake API at";
  api = std::make_unique<FakeKubeApi>(FakeKubeApi::Options{"test-token", "0.0.0.0", 0});
  api->start();
  ASSERT_NO_FATAL_FAILURE(start_proxy());
  // The fake's certificate names localhost and 127.0.0.1.
  const std::string server = "https://" + address + ":" + std::to_string(api->port());
  write_kubeconfig(server, "    tls-server-name: localhost\n");

  ::setenv("HTTPS_PROXY", proxy_url().c_str(), 1);
  ::setenv("NO_PROXY", "example.com", 1);
  ASSERT_NO_FATAL_FAILURE(start_and_sync());
  const std::string log = read_file(proxy_log);
  EXPECT_NE(log.find("): CONNECT " + address + ":" + std::to_string(api->port())),
            std::string::npos)
      << log;
  EXPECT_EQ(logs.count(kProxyPassword), 0) << logs.all();

  // NO_PROXY naming the address: direct. The proxy is stopped first, so only a direct connection
  // can sync; counting the proxy's log lines instead raced with tunnels still being logged.
  stop_source();
  proxy.reset();
  ASSERT_FALSE(accepts_connections(proxy_port));
  const std::size_t synced = sink.successes.size();
  ::setenv("NO_PROXY", ("example.com," + address).c_str(), 1);
  start_source();
  EXPECT_TRUE(run_until(io, [&] { return sink.successes.size() > synced; })) << logs.all();
}

}  // namespace
}  // namespace mx::testing
