// A blocking HTTP/1.1 client for an exporter's /metrics, for bench_kube_load's measurements.
// Written here rather than borrowed from curl or the exporter's own client so that a poll costs
// one request on loopback, the body is searched as it arrives, and a poll for one line stops
// reading as soon as that line has arrived: polling then costs the exporter and the machine
// almost nothing, even with a 50 MB body, and does not slow down what it measures.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace mx::bench {

class MetricsClient {
 public:
  explicit MetricsClient(const std::string& host_port);  // "127.0.0.1:PORT"
  ~MetricsClient();
  MetricsClient(const MetricsClient&) = delete;
  MetricsClient& operator=(const MetricsClient&) = delete;

  // The whole body of GET path over a kept-alive connection. Returns the status (body cleared
  // unless 200), or -1 when the server could not be reached or the answer was cut short.
  int get(const std::string& path, std::string& body);

  // GET /metrics (plain text, or gzip when asked) read only up to the line of `family` whose
  // job_name label is `name`; that line's value, NaN when the body has no such line, nullopt
  // when the request failed. The connection is dropped when the rest of the body is not read.
  std::optional<double> job_value(std::string_view family, std::string_view name, bool gzip);

  // The sum of the samples of one family (plain text, read only up to its end); NaN when absent,
  // nullopt when the request failed.
  std::optional<double> family_sum(std::string_view family);

 private:
  struct Head {
    int status = 0;
    std::optional<std::uint64_t> length;
    bool chunked = false;
    bool close = false;
    bool gzip = false;
  };
  enum class Read { data, end, error };

  bool connect_once();
  void disconnect();
  bool fill();
  bool read_line(std::string& line);
  bool start(const std::string& path, bool gzip, Head& head);
  Read read_body(std::string& out);  // the next piece of the current response's body
  // Streams GET /metrics, handing its complete lines to `visit` piece by piece until it returns
  // true (then: true) or the body ends (false); nullopt when the request failed.
  std::optional<bool> scan(bool gzip, const std::function<bool(std::string_view)>& visit);

  std::string host_;
  std::uint16_t port_ = 0;
  int fd_ = -1;
  std::string buffer_;  // received, not yet consumed
  // Where the current response's body stands.
  Head head_;
  std::uint64_t left_ = 0;  // of the body (Content-Length) or of the current chunk
  bool first_chunk_ = true;
};

// Lines of a text exposition that start with prefix (e.g. "modal_job_info{").
std::size_t count_lines_starting(std::string_view body, std::string_view prefix);

// The value of the line of `family` with job_name="name" among the complete lines in text
// (which starts at a line start), or nullopt. Label order is whatever the exporter renders.
std::optional<double> find_job_value(std::string_view text, std::string_view family,
                                     std::string_view name);

}  // namespace mx::bench
