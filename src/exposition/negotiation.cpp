#include "exposition/negotiation.h"

#include <cctype>
#include <cstdlib>
#include <optional>
#include <string>

namespace mx {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

struct MediaRange {
  std::string type;     // "text/plain", "*/*", ...
  std::string version;  // parameter "version", lower-case; empty when absent
  double q = 1.0;
};

// Calls fn(MediaRange) for each comma-separated element of an Accept-style header.
template <typename Fn>
void for_each_range(std::string_view header, Fn fn) {
  while (!header.empty()) {
    auto comma = header.find(',');
    std::string_view element = header.substr(0, comma);
    header = comma == std::string_view::npos ? std::string_view{} : header.substr(comma + 1);
    MediaRange range;
    auto semi = element.find(';');
    range.type = lower(trim(element.substr(0, semi)));
    while (semi != std::string_view::npos) {
      element = element.substr(semi + 1);
      semi = element.find(';');
      auto param = trim(element.substr(0, semi));
      auto eq = param.find('=');
      if (eq == std::string_view::npos) continue;
      auto name = lower(trim(param.substr(0, eq)));
      auto value = std::string(trim(param.substr(eq + 1)));
      if (name == "q") {
        char* end = nullptr;
        double q = std::strtod(value.c_str(), &end);
        range.q = (end && *end == '\0' && q >= 0 && q <= 1) ? q : 0;
      } else if (name == "version") {
        range.version = lower(value);
      }
    }
    if (!range.type.empty()) fn(range);
  }
}

}  // namespace

ExpositionFormat negotiate_format(std::string_view accept) {
  ExpositionFormat best = ExpositionFormat::text;
  double best_q = -1;
  for_each_range(accept, [&](const MediaRange& r) {
    if (r.q <= 0) return;
    std::optional<ExpositionFormat> f;
    if (r.type == "application/openmetrics-text" &&
        (r.version.empty() || r.version == "1.0.0" || r.version == "0.0.1")) {
      f = ExpositionFormat::openmetrics;
    } else if ((r.type == "text/plain" && (r.version.empty() || r.version == "0.0.4")) ||
               r.type == "text/*" || r.type == "*/*") {
      f = ExpositionFormat::text;
    }
    if (f && r.q > best_q) {
      best = *f;
      best_q = r.q;
    }
  });
  return best;
}

bool accepts_gzip(std::string_view accept_encoding) {
  // An explicit gzip entry decides; otherwise "*" does.
  std::optional<double> explicit_q, any_q;
  for_each_range(accept_encoding, [&](const MediaRange& r) {
    if (r.type == "gzip" || r.type == "x-gzip") explicit_q = r.q;
    if (r.type == "*") any_q = r.q;
  });
  if (explicit_q) return *explicit_q > 0;
  return any_q && *any_q > 0;
}

}  // namespace mx
