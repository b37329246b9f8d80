// The client also speaks plain http:// (kubectl proxy, test servers). A tiny sequential server
// answers every LIST with a fixed page and every WATCH with one chunked event.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

#include "sources/kubernetes/kubernetes_source.h"
#include "support/io.h"
#include "support/log_capture.h"
#include "support/recording_sinks.h"
#include "support/temp_dir.h"

namespace mx::testing {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace std::chrono_literals;

class PlainServer {
 public:
  PlainServer() : acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    thread_ = std::thread([this] { serve(); });
  }
  ~PlainServer() {
    stopping_ = true;
    boost::system::error_code ec;
    tcp::socket poke(io_);
    poke.connect(acceptor_.local_endpoint(), ec);  // unblocks accept()
    thread_.join();
  }
  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
  int watches() const { return watches_; }

 private:
  void serve() {
    while (!stopping_) {
      tcp::socket socket(io_);
      boost::system::error_code ec;
      acceptor_.accept(socket, ec);
      if (ec || stopping_) return;
      asio::streambuf head;
      asio::read_until(socket, head, "\r\n\r\n", ec);
      if (ec) continue;
      std::string request(asio::buffers_begin(head.data()), asio::buffers_end(head.data()));
      const bool jobs = request.find("/modaljobs") != std::string::npos;
      std::string response;
      if (request.find("watch=1") != std::string::npos) {
        ++watches_;
        const std::string event =
            jobs
                ? R"({"type":"ADDED","object":{"metadata":{"uid":"w-1","name":"watched","resourceVersion":"2"}}})"
                  "\n"
                : "";
        response =
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
        if (!event.empty()) {
          // One event split over two chunks.
          const std::string a = event.substr(0, 10), b = event.substr(10);
          response +=
              to_hex(a.size()) + "\r\n" + a + "\r\n" + to_hex(b.size()) + "\r\n" + b + "\r\n";
        }
        response += "0\r\n\r\n";
      } else {
        const std::string body =
            jobs
                ? R"({"kind":"List","metadata":{"resourceVersion":"1"},"items":[{"metadata":{"uid":"l-1","name":"listed"}}]})"
                : R"({"kind":"List","metadata":{"resourceVersion":"1"},"items":[]})";
        response = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                   std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
      }
      asio::write(socket, asio::buffer(response), ec);
      socket.shutdown(tcp::socket::shutdown_both, ec);
    }
  }
  static std::string to_hex(std::size_t n) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%zx", n);
    return buf;
  }

  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> watches_{0};
};

TEST(PlainHttp, ListAndWatchOverHttp) {
  LogCapture logs;
  PlainServer server;
  TempDir dir;
  KubernetesConfig config;
  config.kubeconfig =
      dir.write("kubeconfig",
                "current-context: c\ncontexts:\n- name: c\n  context: {cluster: k}\n"
                "clusters:\n- name: k\n  cluster:\n    server: http://127.0.0.1:" +
                    std::to_string(server.port()) + "\n");
  BackoffConfig backoff{50ms, 200ms};
  RecordingKubeSink sink;
  boost::asio::io_context io;
  {
    KubernetesSource source(io, config, backoff, sink, sink);
    source.set_operator_pod("", "");
    source.start();
    ASSERT_TRUE(run_until(io, [&] { return !sink.successes.empty(); })) << logs.all();
    ASSERT_TRUE(run_until(io, [&] { return sink.jobs.count("w-1") == 1; })) << logs.all();
    EXPECT_EQ(sink.jobs.count("l-1"), 1u);
    EXPECT_EQ(sink.jobs.at("w-1").name, "watched");
    ASSERT_TRUE(run_until(io, [&] { return server.watches() >= 10; }));  // clean ends re-watch
    EXPECT_TRUE(sink.errors.empty()) << logs.all();
    source.stop();
  }
  run_for(io, 20ms);
}

}  // namespace
}  // namespace mx::testing
