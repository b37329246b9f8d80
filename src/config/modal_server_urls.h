// Modal's server URL setting (sources.modal.server_url, env MODAL_SERVER_URL): one URL or a
// comma-separated list, as gRPC targets. The config reader checks the setting with it, and the
// Modal source turns the checked setting into its channels with it.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mx {

// "https://host[:port]" (TLS, default port 443) or "http://host[:port]" (plaintext, default
// port 80; for tests and local fakes). A trailing '/' is allowed, a path is not.
struct ModalServerTarget {
  std::string target;  // "host:port" as gRPC wants it
  bool tls = true;
};

// On failure *error says what is wrong with which URL (quoted), not naming the setting.
std::optional<ModalServerTarget> parse_modal_server_url(std::string_view url, std::string* error);

// A comma-separated list of such URLs (Modal's clients accept one too; surrounding spaces are
// trimmed, empty entries rejected). At least one; every entry must parse.
std::optional<std::vector<ModalServerTarget>> parse_modal_server_urls(std::string_view list,
                                                                      std::string* error);

}  // namespace mx
