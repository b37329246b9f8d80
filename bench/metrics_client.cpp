#include "metrics_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <stdexcept>

namespace mx::bench {

MetricsClient::MetricsClient(const std::string& host_port) {
  const auto colon = host_port.rfind(':');
  if (colon == std::string::npos) throw std::invalid_argument("expected HOST:PORT");
  host_ = host_port.substr(0, colon);
  port_ = static_cast<std::uint16_t>(std::stoi(host_port.substr(colon + 1)));
}

MetricsClient::~MetricsClient() {
  disconnect();
}

bool MetricsClient::connect_once() {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port_);
  if (::inet_pton(AF_INET, host_.c_str(), &addr.sin_addr) != 1 ||
      ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    disconnect();
    return false;
  }
  const int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  timeval timeout{30, 0};
  ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  buffer_.clear();
  return true;
}

void MetricsClient::disconnect() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  buffer_.clear();
}

bool MetricsClient::fill() {
  char chunk[1 << 16];
  const auto n = ::recv(fd_, chunk, sizeof chunk, 0);
  if (n <= 0) return false;
  buffer_.append(chunk, static_cast<std::size_t>(n));
  return true;
}

bool MetricsClient::read_line(std::string& line) {
  std::size_t eol;
  while ((eol = buffer_.find("\r\n")) == std::string::npos) {
    if (!fill()) return false;
  }
  line.assign(buffer_, 0, eol);
  buffer_.erase(0, eol + 2);
  return true;
}

bool MetricsClient::start(const std::string& path, bool gzip, Head& head) {
  // A kept-alive connection may have been closed by the server since: one retry on a new one.
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (fd_ < 0 && !connect_once()) return false;
    std::string req = "GET " + path + " HTTP/1.1\r\nHost: " + host_ +
                      "\r\nUser-Agent: bench_kube_load\r\nAccept: */*\r\n";
    if (gzip) req += "Accept-Encoding: gzip\r\n";
    req += "\r\n";
    std::string line;
    if (::send(fd_, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size()) ||
        !read_line(line) || line.size() < 12) {
      disconnect();
      continue;
    }
    head = Head{};
    head.status = std::atoi(line.c_str() + 9);
    while (read_line(line) && !line.empty()) {
      std::transform(line.begin(), line.end(), line.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      const auto has = [&](const char* value) { return line.find(value) != std::string::npos; };
      if (line.starts_with("content-length:")) head.length = std::stoull(line.substr(15));
      if (line.starts_with("transfer-encoding:") && has("chunked")) head.chunked = true;
      if (line.starts_with("connection:") && has("close")) head.close = true;
      if (line.starts_with("content-encoding:") && has("gzip")) head.gzip = true;
    }
    if (!line.empty()) {
      disconnect();
      return false;
    }
    head_ = head;
    left_ = head.length.value_or(0);
    first_chunk_ = true;
    return true;
  }
  return false;
}

MetricsClient::Read MetricsClient::read_body(std::string& out) {
  if (head_.chunked && left_ == 0) {
    std::string line;
    if (!first_chunk_ && (!read_line(line) || !line.empty())) return Read::error;
    first_chunk_ = false;
    if (!read_line(line)) return Read::error;
    left_ = std::strtoull(line.c_str(), nullptr, 16);
    if (left_ == 0) {
      while (read_line(line) && !line.empty()) {
      }
      return line.empty() ? Read::end : Read::error;
    }
  }
  const bool until_close = !head_.chunked && !head_.length;
  if (!until_close && left_ == 0) return Read::end;
  if (buffer_.empty() && !fill()) return until_close ? Read::end : Read::error;
  const auto take = until_close ? buffer_.size() : std::min<std::uint64_t>(left_, buffer_.size());
  out.append(buffer_, 0, take);
  buffer_.erase(0, take);
  if (!until_close) left_ -= take;
  return Read::data;
}

int MetricsClient::get(const std::string& path, std::string& body) {
  body.clear();
  Head head;
  if (!start(path, false, head)) return -1;
  for (;;) {
    const auto r = read_body(body);
    if (r == Read::end) break;
    if (r == Read::error) {
      disconnect();
      return -1;
    }
  }
  if (head.close || (!head.chunked && !head.length)) disconnect();
  if (head.status != 200) body.clear();
  return head.status;
}

std::optional<bool> MetricsClient::scan(bool gzip,
                                        const std::function<bool(std::string_view)>& visit) {
  Head head;
  if (!start("/metrics", gzip, head)) return std::nullopt;
  z_stream z{};
  const bool inflating = head.gzip;
  if (inflating && inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) return std::nullopt;
  std::string raw, text;
  bool stopped = false, complete = false, failed = false;
  while (!stopped && !complete && !failed) {
    raw.clear();
    const auto r = read_body(raw);
    if (r == Read::error) failed = true;
    if (r == Read::end) complete = true;
    if (inflating && !raw.empty()) {
      z.next_in = reinterpret_cast<Bytef*>(raw.data());
      z.avail_in = static_cast<uInt>(raw.size());
      while (z.avail_in > 0) {
        char out[1 << 16];
        z.next_out = reinterpret_cast<Bytef*>(out);
        z.avail_out = sizeof out;
        const int rc = inflate(&z, Z_NO_FLUSH);
        text.append(out, sizeof out - z.avail_out);
        // Several gzip members one after the other are one valid gzip body.
        if (rc == Z_STREAM_END && inflateReset(&z) == Z_OK) continue;
        if (rc != Z_OK) {
          failed = true;
          break;
        }
      }
    } else {
      text += raw;
    }
    // Complete lines are visited once and dropped: a poll of a 50 MB body stays linear and
    // holds one piece at a time.
    const auto last_newline = text.rfind('\n');
    if (last_newline == std::string::npos || failed) continue;
    stopped = visit(std::string_view(text).substr(0, last_newline + 1));
    text.erase(0, last_newline + 1);
  }
  if (inflating) inflateEnd(&z);
  if (failed) {
    disconnect();
    return std::nullopt;
  }
  // Stopping mid-body leaves the rest in flight: the connection cannot carry another request.
  if (!complete || head.close || (!head.chunked && !head.length)) disconnect();
  if (head.status != 200) return std::nullopt;
  return stopped;
}

std::optional<double> MetricsClient::job_value(std::string_view family, std::string_view name,
                                               bool gzip) {
  std::optional<double> value;
  const auto ok = scan(gzip, [&](std::string_view lines) {
    value = find_job_value(lines, family, name);
    return value.has_value();
  });
  if (!ok) return std::nullopt;
  return value ? value : std::optional<double>(std::nan(""));
}

std::optional<double> MetricsClient::family_sum(std::string_view family) {
  double sum = 0;
  bool seen = false;
  const auto ok = scan(false, [&](std::string_view lines) {
    while (!lines.empty()) {
      const auto eol = lines.find('\n');
      const auto line = lines.substr(0, eol);
      lines.remove_prefix(eol + 1);
      const bool ours = line.starts_with(family) && line.size() > family.size() &&
                        (line[family.size()] == '{' || line[family.size()] == ' ');
      if (ours) {
        seen = true;
        sum += std::strtod(std::string(line.substr(line.rfind(' ') + 1)).c_str(), nullptr);
      } else if (seen && !line.starts_with("#")) {
        return true;  // the next family: ours is complete
      }
    }
    return false;
  });
  if (!ok) return std::nullopt;
  return seen ? sum : std::nan("");
}

std::size_t count_lines_starting(std::string_view body, std::string_view prefix) {
  std::string needle(1, '\n');  // (not "\n" + prefix: GCC 12 warns wrongly, bug 105329)
  needle += prefix;
  std::size_t n = body.starts_with(prefix) ? 1 : 0;
  const char* p = body.data();
  const char* end = body.data() + body.size();
  while (const void* hit =
             ::memmem(p, static_cast<std::size_t>(end - p), needle.data(), needle.size())) {
    ++n;
    p = static_cast<const char*>(hit) + needle.size();
  }
  return n;
}

std::optional<double> find_job_value(std::string_view text, std::string_view family,
                                     std::string_view name) {
  const std::string needle = "job_name=\"" + std::string(name) + "\"";
  const char* p = text.data();
  const char* end = text.data() + text.size();
  while (const void* found =
             ::memmem(p, static_cast<std::size_t>(end - p), needle.data(), needle.size())) {
    const char* hit = static_cast<const char*>(found);
    p = hit + needle.size();
    const char* line = hit;
    while (line > text.data() && line[-1] != '\n') --line;
    const std::string_view rest(line, static_cast<std::size_t>(end - line));
    if (!rest.starts_with(family) || rest.size() <= family.size() || rest[family.size()] != '{')
      continue;
    const auto close = rest.find("} ");
    if (close == std::string_view::npos) return std::nullopt;
    return std::strtod(line + close + 2, nullptr);
  }
  return std::nullopt;
}

}  // namespace mx::bench
