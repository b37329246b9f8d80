// Content negotiation for /metrics: Accept chooses text 0.0.4 or OpenMetrics 1.0.0,
// Accept-Encoding chooses gzip.
#pragma once

#include <string_view>

#include "exposition/text_format.h"

namespace mx {

inline constexpr std::string_view kTextContentType = "text/plain; version=0.0.4; charset=utf-8";
inline constexpr std::string_view kOpenMetricsContentType =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

// Highest-q acceptable media range wins; ties go to the one listed first; nothing acceptable
// (or no header) means text, as Prometheus client libraries do.
ExpositionFormat negotiate_format(std::string_view accept);
// True when gzip (or *) is acceptable with q > 0.
bool accepts_gzip(std::string_view accept_encoding);

inline std::string_view content_type(ExpositionFormat f) {
  return f == ExpositionFormat::openmetrics ? kOpenMetricsContentType : kTextContentType;
}

}  // namespace mx
