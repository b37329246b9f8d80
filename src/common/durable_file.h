// Replacing a file so that a crash or a power cut leaves either the old content or the new one,
// never an empty or half-written file: the new content goes to a temporary file beside it, which
// is flushed to the disk (fsync) before it is renamed over the old one, and the directory is
// flushed after the rename so that the new name itself survives.
#pragma once

#include <string>
#include <string_view>

namespace mx {

// Writes `content` to `path` durably. On failure the file at `path` is left as it was, the
// temporary file is removed, and `error` says which step failed and why.
bool replace_file_durably(const std::string& path, std::string_view content, std::string& error);

}  // namespace mx
