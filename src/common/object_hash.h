// The hash that places a metric object (a job UID, an endpoint UID) in one of its family's
// snapshot chunks: the chunk index is this hash masked to the family's bucket count, a power of
// two (exposition/snapshot_builder.cpp). Model::tick picks each running job's cost-refresh second
// from the same hash's low bits (Model::refresh_slot), so the jobs refreshed on one tick share
// their chunks and the tick re-compresses a small part of the cost family, not every chunk.
#pragma once

#include <cstddef>
#include <functional>
#include <string_view>

namespace mx {

inline std::size_t object_hash(std::string_view key) {
  return std::hash<std::string_view>{}(key);
}

}  // namespace mx
