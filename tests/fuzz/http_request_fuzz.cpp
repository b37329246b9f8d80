// The server's request path without a socket: the bytes a client sends, fed in fragments into a
// Boost.Beast request parser set up as src/http/session.cpp sets it up (header and body limits of
// web.max_request_bytes, several pipelined requests per connection), each parsed request turned
// into an HttpRequest as the server does and answered by the exporter's routes
// (make_exporter_handler). Invariants: the response serialises as valid HTTP, and a gzip body
// inflates to exactly the uncompressed body.
#include <zlib.h>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http.hpp>
#include <memory>
#include <sstream>
#include <string>

#include "exposition/snapshot_builder.h"
#include "fuzz_support.h"
#include "http/routes.h"

namespace http = boost::beast::http;

namespace {

const mx::WebConfig kWeb;  // the defaults: the limits a deployed exporter runs with

std::string gunzip(const std::string& in) {
  z_stream z{};
  MX_FUZZ_CHECK(inflateInit2(&z, 16 + MAX_WBITS) == Z_OK);
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  std::string out;
  char buf[16384];
  int rc = Z_OK;
  while (rc == Z_OK) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    rc = inflate(&z, Z_NO_FLUSH);
    out.append(buf, sizeof buf - z.avail_out);
  }
  inflateEnd(&z);
  MX_FUZZ_CHECK(rc == Z_STREAM_END);
  return out;
}

const mx::HttpHandler& handler() {
  static const mx::HttpHandler h = [] {
    mx::RouteContext c;
    c.telemetry_path = "/metrics";
    c.version = "fuzz";
    mx::FamilySet families;
    const auto a = families.add_family({"a", "A.", mx::MetricType::gauge});
    families.set(a, "x", "a{x=\"1\"} 1\n");
    auto snapshot = families.publish(6);
    c.snapshot = [snapshot] { return snapshot; };
    c.self_metrics = [](mx::ExpositionFormat) { return std::string("self_up 1\n"); };
    c.ready = [](std::string& why) {
      why = "kubernetes";
      return false;
    };
    return mx::make_exporter_handler(std::move(c));
  }();
  return h;
}

std::string joined(const mx::HttpResponse& r) {
  std::string out;
  for (const auto& piece : r.body) out += *piece;
  return out;
}

// What the server does with one parsed request.
void answer(const http::request<http::string_body>& req) {
  mx::HttpRequest request;
  request.method = std::string(req.method_string());
  request.target = std::string(req.target());
  request.accept = std::string(req[http::field::accept]);
  request.accept_encoding = std::string(req[http::field::accept_encoding]);
  const mx::HttpResponse r = handler()(request);
  MX_FUZZ_CHECK(r.status >= 200 && r.status < 600);

  http::response<http::string_body> res;
  res.version(req.version());
  res.result(r.status);
  res.set(http::field::content_type, r.content_type);
  for (const auto& [k, v] : r.headers) res.set(k, v);
  res.body() = joined(r);
  MX_FUZZ_CHECK(res.body().size() == r.body_size());
  res.prepare_payload();
  std::ostringstream wire;
  wire << res;
  // The response must parse as HTTP again (no header injection, correct framing).
  http::response_parser<http::string_body> check;
  check.eager(true);
  boost::beast::error_code ec;
  const std::string bytes = wire.str();
  check.put(boost::asio::buffer(bytes), ec);
  MX_FUZZ_CHECK(!ec && check.is_done());

  bool gzip = false;
  for (const auto& [k, v] : r.headers) gzip = gzip || (k == "Content-Encoding" && v == "gzip");
  if (gzip) {
    mx::HttpRequest plain = request;
    plain.accept_encoding.clear();
    MX_FUZZ_CHECK(gunzip(res.body()) == joined(handler()(plain)));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool init = (mx::fuzz::capture_logs(), true);
  (void)init;
  if (size == 0) return 0;
  // The first byte sets how many bytes arrive per read (1..64, 0: everything at once): Beast
  // must give the same answer however the stream is fragmented.
  const std::size_t chunk = data[0] % 65 == 0 ? size : data[0] % 65;
  std::string_view stream = mx::fuzz::as_text(data + 1, size - 1);

  std::string received;  // bytes read but not yet consumed, as the session's flat_buffer
  for (int requests = 0; requests < 32; ++requests) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(kWeb.max_request_bytes));
    parser.body_limit(kWeb.max_request_bytes);
    boost::beast::error_code ec;
    while (!parser.is_done()) {
      if (!received.empty()) {
        const std::size_t used = parser.put(boost::asio::buffer(received), ec);
        received.erase(0, used);
        if (ec && ec != http::error::need_more) break;
        ec = {};
        if (parser.is_done() || used > 0) continue;
      }
      if (stream.empty()) {
        return 0;  // the client stopped sending: the session closes at its read timeout
      }
      const std::size_t n = std::min(chunk, stream.size());
      received.append(stream.substr(0, n));
      stream.remove_prefix(n);
    }
    if (ec) return 0;  // 400 / 413 / 431 and close
    answer(parser.get());
    if (!parser.get().keep_alive()) return 0;
  }
  return 0;
}
