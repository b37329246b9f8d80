#include "exposition/snapshot.h"

namespace mx {

Snapshot::Snapshot(std::vector<ChunkPtr> text_parts, std::vector<ChunkPtr> openmetrics_parts,
                   int gzip_level, std::uint64_t generation)
    : text_(make_view(std::move(text_parts))),
      openmetrics_(make_view(std::move(openmetrics_parts))),
      gzip_level_(gzip_level),
      generation_(generation) {}

Snapshot::View Snapshot::make_view(std::vector<ChunkPtr> parts) {
  View v;
  for (const auto& p : parts) {
    v.crc32 = combine_crc32(v.crc32, p->deflated.crc32, p->deflated.length);
    v.size += p->text.size();
  }
  v.parts = std::move(parts);
  return v;
}

std::string Snapshot::body(ExpositionFormat format) const {
  std::string out;
  out.reserve(size(format));
  for (const auto& p : parts(format)) out += p->text;
  return out;
}

}  // namespace mx
