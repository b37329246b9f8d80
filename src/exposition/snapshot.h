// The exposition snapshot (docs/design.md, step 4): an immutable list of chunks that scrapes send
// as they are (scatter-gather), plain or as the chunks' stored deflate pieces stitched into one
// gzip stream. Sample lines are the same in both formats, so the text and OpenMetrics views share
// every sample chunk and differ only in their family headers. Built by SnapshotBuilder
// (exposition/family_set.h); a new snapshot re-uses every chunk that did not change.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "exposition/gzip.h"
#include "exposition/text_format.h"

namespace mx {

// A piece of the body: its text and that text's raw deflate (ending on a full flush).
struct Chunk {
  std::string text;
  DeflatedPart deflated;
};
using ChunkPtr = std::shared_ptr<const Chunk>;

class Snapshot {
 public:
  Snapshot(std::vector<ChunkPtr> text_parts, std::vector<ChunkPtr> openmetrics_parts,
           int gzip_level, std::uint64_t generation);

  // The body's chunks in order (without the per-scrape tail and OpenMetrics' "# EOF").
  const std::vector<ChunkPtr>& parts(ExpositionFormat format) const { return view(format).parts; }
  // CRC-32 and length of the whole body: what a gzip trailer after the tail combines with.
  std::uint32_t crc32(ExpositionFormat format) const { return view(format).crc32; }
  std::uint64_t size(ExpositionFormat format) const { return view(format).size; }
  // The body as one string (tests and tools; scrapes never join it).
  std::string body(ExpositionFormat format) const;

  int gzip_level() const { return gzip_level_; }
  std::uint64_t generation() const { return generation_; }

 private:
  struct View {
    std::vector<ChunkPtr> parts;
    std::uint32_t crc32 = 0;
    std::uint64_t size = 0;
  };
  const View& view(ExpositionFormat format) const {
    return format == ExpositionFormat::openmetrics ? openmetrics_ : text_;
  }
  static View make_view(std::vector<ChunkPtr> parts);

  View text_;
  View openmetrics_;
  int gzip_level_;
  std::uint64_t generation_;
};

}  // namespace mx
