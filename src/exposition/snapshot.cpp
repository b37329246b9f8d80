#include "exposition/snapshot.h"

namespace mx {

std::string Snapshot::body(ExpositionFormat format) const {
  std::string out;
  out.reserve(size(format));
  for (const auto& p : plain(format)) out += *p;
  return out;
}

}  // namespace mx
