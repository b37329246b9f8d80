// --web.listen-address: parsing "HOST:PORT", ":PORT" and "[v6]:PORT", and opening the listening
// socket on it.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <string>

namespace mx {

// "HOST:PORT", ":PORT" (all addresses), "[v6]:PORT". Throws ConfigError when malformed.
boost::asio::ip::tcp::endpoint parse_listen_address(const std::string& address);

// Opens, binds and listens on `address`; ":PORT" serves IPv4 and IPv6 alike (IPv4 only on a
// host without IPv6). Returns the bound endpoint; boost::system::system_error when it is taken.
boost::asio::ip::tcp::endpoint listen_on(boost::asio::ip::tcp::acceptor& acceptor,
                                         const std::string& address);

}  // namespace mx
