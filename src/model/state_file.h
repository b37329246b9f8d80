// The state file: what a restart needs so that no counter counts a live job twice and no
// counter starts over — the count history of live jobs, the totals, and the Warning Event
// counts. JSON, written atomically (temp file + rename) and only when it changed; its size
// follows the live set (see model/count_history.h for the bounds).
#pragma once

#include <string>
#include <string_view>

#include "model/count_history.h"
#include "model/warning_events.h"

namespace mx {

class StateFile {
 public:
  static std::string encode(const CountHistory& history, const WarningEvents& events);
  // Replaces `history` and `events` with the decoded state. On any error nothing is changed,
  // `error` says what was wrong and false is returned. Never throws.
  static bool decode(std::string_view text, CountHistory& history, WarningEvents& events,
                     std::string& error);

  // Replaces the file durably (common/durable_file.h): after a crash or a power cut it holds the
  // previous state or this one. Logs and returns false on failure, leaving the previous state.
  static bool save(const std::string& path, const CountHistory& history,
                   const WarningEvents& events);
  // A missing or corrupt file is logged and the state starts fresh; returns false then.
  static bool load(const std::string& path, CountHistory& history, WarningEvents& events);
};

}  // namespace mx
