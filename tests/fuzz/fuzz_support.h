// Helpers shared by the fuzz targets.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "common/log.h"

namespace mx::fuzz {

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// An invariant the code under test promises; a violation is a finding (abort -> crash input).
#define MX_FUZZ_CHECK(cond)                                                               \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      std::fprintf(stderr, "%s:%d: invariant violated: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                       \
    }                                                                                     \
  } while (0)

// Every log line is formatted (hostile values end up in logs) but not printed; a line must stay
// one line whatever the input holds (no log injection).
inline void capture_logs() {
  log::configure(LogLevel::debug, LogFormat::logfmt);
  log::set_sink([](std::string_view line) {
    MX_FUZZ_CHECK(line.find('\n') == std::string_view::npos);
    MX_FUZZ_CHECK(line.find('\r') == std::string_view::npos);
  });
}

}  // namespace mx::fuzz
