// TLS helpers for tests: certificates made with the openssl CLI, bcrypt hashes made with
// htpasswd (apache2-utils, as README tells users), and a blocking HTTPS client.
#pragma once

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>

#include "support/http_client.h"
#include "support/process.h"

namespace mx::testing {

// Writes, under `dir`: <ca>.crt/.key for a CA, and leaf certificates signed by it.
class TestPki {
 public:
  explicit TestPki(std::string dir) : dir_(std::move(dir)) { sh("mkdir -p '" + dir_ + "'"); }
  const std::string& dir() const { return dir_; }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  void make_ca(const std::string& ca) {
    sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj '/CN=" +
       ca + "' -keyout '" + path(ca + ".key") + "' -out '" + path(ca + ".crt") + "'");
  }
  // A leaf certificate `name`.crt/.key signed by `ca`, with the given subjectAltName (e.g.
  // "IP:127.0.0.1,DNS:localhost") and extended key usage (serverAuth or clientAuth).
  void make_leaf(const std::string& name, const std::string& ca, const std::string& san,
                 const std::string& usage) {
    const std::string ext = path(name + ".ext");
    sh("printf 'subjectAltName=" + san + "\\nextendedKeyUsage=" + usage + "\\n' > '" + ext + "'");
    sh("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj '/CN=" + name +
       "' -keyout '" + path(name + ".key") + "' -out '" + path(name + ".csr") + "'");
    sh("openssl x509 -req -days 2 -in '" + path(name + ".csr") + "' -CA '" + path(ca + ".crt") +
       "' -CAkey '" + path(ca + ".key") + "' -CAcreateserial -extfile '" + ext + "' -out '" +
       path(name + ".crt") + "'");
  }

  static void sh(const std::string& command) {
    std::string out;
    if (run_command(command, out) != 0) throw std::runtime_error(command + ": " + out);
  }

 private:
  std::string dir_;
};

// `htpasswd -nbBC <cost>` output without the user: the hash for a web config.
inline std::string bcrypt_hash(const std::string& password, int cost = 5) {
  std::string out;
  if (run_command("htpasswd -nbBC " + std::to_string(cost) + " u '" + password + "'", out) != 0) {
    throw std::runtime_error("htpasswd failed: " + out);
  }
  const auto colon = out.find(':');
  auto end = out.find_first_of("\r\n", colon);
  return out.substr(colon + 1, end - colon - 1);
}

struct TlsClientOptions {
  std::string ca_file;              // verify the server against it; empty: do not verify
  std::string cert_file, key_file;  // client certificate
  std::string server_name = "localhost";
};

// One HTTPS connection; throws on a failed handshake or a malformed response.
class TlsConnection {
 public:
  TlsConnection(std::uint16_t port, const TlsClientOptions& options)
      : ctx_(make_context(options)), stream_(io_, ctx_) {
    stream_.set_verify_mode(options.ca_file.empty() ? boost::asio::ssl::verify_none
                                                    : boost::asio::ssl::verify_peer);
    SSL_set_tlsext_host_name(stream_.native_handle(), options.server_name.c_str());
    timeval tv{10, 0};  // a guard against hanging
    stream_.next_layer().connect({boost::asio::ip::make_address("127.0.0.1"), port});
    ::setsockopt(stream_.next_layer().native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    stream_.handshake(boost::asio::ssl::stream_base::client);
  }

  TestResponse get(const std::string& target,
                   const std::map<std::string, std::string>& headers = {}) {
    namespace http = boost::beast::http;
    std::string req = "GET " + target + " HTTP/1.1\r\nHost: localhost\r\n";
    for (const auto& [k, v] : headers) req += k + ": " + v + "\r\n";
    req += "\r\n";
    boost::asio::write(stream_, boost::asio::buffer(req));
    http::response_parser<http::string_body> parser;
    parser.body_limit(1ULL << 30);
    http::read(stream_, buffer_, parser);
    TestResponse r;
    const auto& res = parser.get();
    r.status = res.result_int();
    for (const auto& field : res) {
      std::string name(field.name_string());
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      r.headers[name] = std::string(field.value());
    }
    r.body = res.body();
    r.keep_alive = res.keep_alive();
    return r;
  }

  // The subject of the certificate the server presented.
  std::string peer_subject() {
    X509* cert = SSL_get0_peer_certificate(stream_.native_handle());
    if (!cert) return "";
    char buf[256];
    X509_NAME_oneline(X509_get_subject_name(cert), buf, sizeof buf);
    return buf;
  }

 private:
  // The certificate must be in the context before the stream (its SSL object) is made.
  static boost::asio::ssl::context make_context(const TlsClientOptions& options) {
    boost::asio::ssl::context ctx(boost::asio::ssl::context::tls_client);
    if (!options.ca_file.empty()) ctx.load_verify_file(options.ca_file);
    if (!options.cert_file.empty()) {
      ctx.use_certificate_chain_file(options.cert_file);
      ctx.use_private_key_file(options.key_file, boost::asio::ssl::context::pem);
    }
    return ctx;
  }

  boost::asio::io_context io_;
  boost::asio::ssl::context ctx_;
  boost::asio::ssl::stream<boost::asio::ip::tcp::socket> stream_;
  boost::beast::flat_buffer buffer_;
};

inline TestResponse https_get(std::uint16_t port, const TlsClientOptions& options,
                              const std::string& target,
                              const std::map<std::string, std::string>& headers = {}) {
  TlsConnection c(port, options);
  return c.get(target, headers);
}

}  // namespace mx::testing
