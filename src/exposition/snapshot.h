// The exposition snapshot (docs/design.md, step 4): immutable lists of pieces that scrapes send
// as they are (scatter-gather), plain or as stored deflate pieces stitched into one gzip
// stream. Sample lines are the same in both formats, so the text and OpenMetrics views share
// every sample chunk and differ only in their family headers. Built by SnapshotBuilder
// (exposition/snapshot_builder.h); a new snapshot re-uses every chunk that did not change.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "exposition/gzip.h"
#include "exposition/text_format.h"

namespace mx {

// A piece of the body: its text and, for a piece sent alone (a family header), that text's raw
// deflate ending on a full flush. A family's sample chunks leave `deflated` empty: their deflate
// pieces exist once, inside the joined piece of their group of buckets
// (exposition/snapshot_builder.h).
struct Chunk {
  std::string text;
  DeflatedPart deflated;
};
using ChunkPtr = std::shared_ptr<const Chunk>;
using Bytes = std::shared_ptr<const std::string>;  // shares ownership of a chunk or piece

class Snapshot {
 public:
  // One format's body: the pieces a plain response sends, the raw deflate pieces a gzip
  // response sends (fewer and larger: a group of a family's chunks is joined, so a gzip scrape
  // makes a few large writes, not a thousand small ones), and the CRC-32 and length of the whole
  // body.
  struct View {
    std::vector<Bytes> plain;
    std::vector<Bytes> deflated;
    std::uint32_t crc32 = 0;
    std::uint64_t size = 0;
  };

  Snapshot(View text, View openmetrics, std::uint64_t generation)
      : text_(std::move(text)), openmetrics_(std::move(openmetrics)), generation_(generation) {}

  // Without the per-scrape tail and OpenMetrics' "# EOF".
  const std::vector<Bytes>& plain(ExpositionFormat format) const { return view(format).plain; }
  const std::vector<Bytes>& deflated(ExpositionFormat format) const {
    return view(format).deflated;
  }
  // What a gzip trailer after the tail combines with.
  std::uint32_t crc32(ExpositionFormat format) const { return view(format).crc32; }
  std::uint64_t size(ExpositionFormat format) const { return view(format).size; }
  // The body as one string (tests and tools; scrapes never join it).
  std::string body(ExpositionFormat format) const;

  std::uint64_t generation() const { return generation_; }

 private:
  const View& view(ExpositionFormat format) const {
    return format == ExpositionFormat::openmetrics ? openmetrics_ : text_;
  }

  View text_;
  View openmetrics_;
  std::uint64_t generation_;
};

}  // namespace mx
