#include "support/test_http_server.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <stdexcept>
#include <vector>

namespace mx::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

struct Load {
  int in_flight = 0;  // requests read but not yet answered
  int max_in_flight = 0;
  int accepted = 0;
  bool keep_alive = false;
};

class ConnectionBase {
 public:
  virtual ~ConnectionBase() = default;
  virtual void close() = 0;
};

template <bool Tls>
class Connection final : public ConnectionBase,
                         public std::enable_shared_from_this<Connection<Tls>> {
  using Stream = std::conditional_t<Tls, beast::ssl_stream<beast::tcp_stream>, beast::tcp_stream>;

 public:
  Connection(tcp::socket socket, asio::ssl::context* tls, TestHttpServer::Handler* handler,
             std::shared_ptr<Load> load)
      : timer_(socket.get_executor()), handler_(handler), load_(std::move(load)) {
    if constexpr (Tls) {
      stream_.emplace(std::move(socket), *tls);
    } else {
      stream_.emplace(std::move(socket));
    }
  }

  void start() {
    auto self = this->shared_from_this();
    if constexpr (Tls) {
      stream_->async_handshake(asio::ssl::stream_base::server, [self](beast::error_code ec) {
        if (!ec) self->read();
      });
    } else {
      read();
    }
  }

  ~Connection() override { done(); }

  void close() override {
    timer_.cancel();
    beast::error_code ec;
    beast::get_lowest_layer(*stream_).socket().close(ec);
  }

 private:
  void read() {
    auto self = this->shared_from_this();
    http::async_read(*stream_, buffer_, request_, [self](beast::error_code ec, std::size_t) {
      if (!ec) self->answer();
    });
  }

  void answer() {
    answering_ = true;
    load_->max_in_flight = std::max(load_->max_in_flight, ++load_->in_flight);
    const ServedResponse r = (*handler_)(std::string(request_.target()));
    response_.result(r.status);
    response_.version(11);
    response_.set(http::field::content_type, r.content_type);
    response_.keep_alive(load_->keep_alive && request_.keep_alive());
    response_.body() = r.body;
    response_.prepare_payload();
    auto self = this->shared_from_this();
    if (r.delay.count() > 0) {
      timer_.expires_after(r.delay);
      timer_.async_wait([self](beast::error_code ec) {
        if (!ec) self->write();
      });
    } else {
      write();
    }
  }

  void write() {
    auto self = this->shared_from_this();
    http::async_write(*stream_, response_, [self](beast::error_code ec, std::size_t) {
      self->done();
      if (!ec && self->response_.keep_alive()) {
        self->request_ = {};
        self->response_ = {};
        self->read();
        return;
      }
      beast::get_lowest_layer(*self->stream_).socket().shutdown(tcp::socket::shutdown_send, ec);
    });
  }

  void done() {
    if (answering_) --load_->in_flight;
    answering_ = false;
  }

  std::optional<Stream> stream_;
  asio::steady_timer timer_;
  TestHttpServer::Handler* handler_;
  std::shared_ptr<Load> load_;
  bool answering_ = false;
  beast::flat_buffer buffer_;
  http::request<http::string_body> request_;
  http::response<http::string_body> response_;
};

}  // namespace

struct TestHttpServer::Impl : std::enable_shared_from_this<Impl> {
  Impl(asio::io_context& io, Handler h, std::shared_ptr<asio::ssl::context> t)
      : acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
        handler(std::move(h)),
        tls(std::move(t)) {}

  void accept() {
    acceptor.async_accept([self = shared_from_this()](beast::error_code ec, tcp::socket socket) {
      if (ec || !self->acceptor.is_open()) return;
      ++self->load->accepted;
      std::shared_ptr<ConnectionBase> base;
      if (self->tls) {
        auto c = std::make_shared<Connection<true>>(std::move(socket), self->tls.get(),
                                                    &self->handler, self->load);
        c->start();
        base = c;
      } else {
        auto c = std::make_shared<Connection<false>>(std::move(socket), nullptr, &self->handler,
                                                     self->load);
        c->start();
        base = c;
      }
      self->connections.push_back(base);
      self->accept();
    });
  }

  tcp::acceptor acceptor;
  Handler handler;
  std::shared_ptr<asio::ssl::context> tls;
  std::vector<std::weak_ptr<ConnectionBase>> connections;
  std::shared_ptr<Load> load = std::make_shared<Load>();
};

TestHttpServer::TestHttpServer(asio::io_context& io, Handler handler,
                               std::shared_ptr<asio::ssl::context> tls)
    : impl_(std::make_shared<Impl>(io, std::move(handler), std::move(tls))) {
  impl_->accept();
}

TestHttpServer::~TestHttpServer() {
  stop();
}

unsigned short TestHttpServer::port() const {
  return impl_->acceptor.local_endpoint().port();
}

std::string TestHttpServer::url(std::string_view path) const {
  return std::string(impl_->tls ? "https" : "http") + "://127.0.0.1:" + std::to_string(port()) +
         std::string(path);
}

int TestHttpServer::max_in_flight() const {
  return impl_->load->max_in_flight;
}

void TestHttpServer::set_keep_alive(bool keep_alive) {
  impl_->load->keep_alive = keep_alive;
}

int TestHttpServer::connections_accepted() const {
  return impl_->load->accepted;
}

void TestHttpServer::close_connections() {
  for (auto& weak : impl_->connections) {
    if (auto c = weak.lock()) c->close();
  }
}

void TestHttpServer::stop() {
  if (!impl_->acceptor.is_open()) return;
  beast::error_code ec;
  impl_->acceptor.close(ec);
  for (auto& weak : impl_->connections) {
    if (auto c = weak.lock()) c->close();
  }
}

namespace {

template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;

std::string bio_string(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(n));
}

}  // namespace

TestCertificate make_test_certificate() {
  PkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) throw std::runtime_error("EC key generation failed");
  X509Ptr cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 24 * 3600);
  X509_set_pubkey(cert.get(), key.get());
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("modal-exporter test"), -1, -1,
                             0);
  X509_set_issuer_name(cert.get(), name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
  for (const auto& [nid, value] : {std::pair{NID_subject_alt_name, "IP:127.0.0.1"},
                                   std::pair{NID_basic_constraints, "critical,CA:TRUE"}}) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    if (!ext) throw std::runtime_error("X509 extension failed");
    X509_add_ext(cert.get(), ext, -1);
    X509_EXTENSION_free(ext);
  }
  if (!X509_sign(cert.get(), key.get(), EVP_sha256())) throw std::runtime_error("sign failed");

  TestCertificate out;
  BioPtr cert_bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(cert_bio.get(), cert.get());
  out.cert_pem = bio_string(cert_bio.get());
  BioPtr key_bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(key_bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  out.key_pem = bio_string(key_bio.get());
  return out;
}

std::shared_ptr<asio::ssl::context> make_server_tls(const TestCertificate& cert) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  ctx->use_certificate_chain(asio::buffer(cert.cert_pem));
  ctx->use_private_key(asio::buffer(cert.key_pem), asio::ssl::context::pem);
  return ctx;
}

std::shared_ptr<asio::ssl::context> make_client_tls_trusting(const TestCertificate& cert) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  ctx->add_certificate_authority(asio::buffer(cert.cert_pem));
  ctx->set_verify_mode(asio::ssl::verify_peer);
  return ctx;
}

}  // namespace mx::testing
