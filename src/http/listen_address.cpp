// Parsing --web.listen-address and opening the listening socket (listen_address.h).
#include "http/listen_address.h"

#include <boost/asio/ip/v6_only.hpp>
#include <cstdlib>

#include "config/config.h"

namespace mx {

namespace net = boost::asio;
using tcp = net::ip::tcp;

tcp::endpoint parse_listen_address(const std::string& address) {
  const auto colon = address.rfind(':');
  if (colon == std::string::npos) {
    throw ConfigError{"listen address \"" + address + "\" must be HOST:PORT or :PORT"};
  }
  std::string host = address.substr(0, colon);
  const std::string port_text = address.substr(colon + 1);
  char* end = nullptr;
  const long port = std::strtol(port_text.c_str(), &end, 10);
  if (port_text.empty() || *end != '\0' || port < 0 || port > 65535) {
    throw ConfigError{"listen address \"" + address + "\": bad port \"" + port_text + "\""};
  }
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty()) return tcp::endpoint(tcp::v6(), static_cast<unsigned short>(port));
  if (host == "localhost") host = "127.0.0.1";
  boost::system::error_code ec;
  auto ip = net::ip::make_address(host, ec);
  if (ec) {
    throw ConfigError{"listen address \"" + address + "\": \"" + host + "\" is not an IP address"};
  }
  return tcp::endpoint(ip, static_cast<unsigned short>(port));
}

tcp::endpoint listen_on(tcp::acceptor& acceptor, const std::string& address) {
  auto endpoint = parse_listen_address(address);
  boost::system::error_code open_error;
  acceptor.open(endpoint.protocol(), open_error);
  if (open_error && endpoint.address().is_v6() && endpoint.address().is_unspecified()) {
    // A host without IPv6: ":PORT" falls back to every IPv4 address.
    endpoint = tcp::endpoint(tcp::v4(), endpoint.port());
    acceptor.open(endpoint.protocol());
  } else if (open_error) {
    throw boost::system::system_error(open_error);
  }
  acceptor.set_option(net::socket_base::reuse_address(true));
  if (endpoint.address().is_v6() && endpoint.address().is_unspecified()) {
    // ":PORT" serves IPv4 and IPv6 alike.
    acceptor.set_option(net::ip::v6_only(false));
  }
  acceptor.bind(endpoint);
  acceptor.listen(net::socket_base::max_listen_connections);
  return acceptor.local_endpoint();
}

}  // namespace mx
