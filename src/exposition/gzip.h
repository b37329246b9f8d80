// gzip built from two deflate pieces: a big prefix compressed once per snapshot (ending on a
// full flush, so it is byte-aligned and self-contained), and a small tail compressed per scrape
// (the self-metrics, which change on every scrape). Both join into one valid gzip member whose
// CRC is combined arithmetically, so the big part is never compressed twice.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace mx {

struct DeflatedPart {
  std::string bytes;         // raw deflate data
  std::uint32_t crc32 = 0;   // of the uncompressed input
  std::uint64_t length = 0;  // uncompressed length
};

// Raw deflate of `data`. final=false ends with a full flush (more parts may follow);
// final=true ends the deflate stream.
DeflatedPart deflate_part(std::string_view data, int level, bool final);

std::string gzip_header();
// The tail of a gzip stream: `tail` deflated as the final part, then the trailer covering
// prefix + tail.
std::string gzip_tail(const DeflatedPart& prefix, std::string_view tail, int level);

// Whole gzip of one buffer (tests, small responses).
std::string gzip_compress(std::string_view data, int level);
// Inflates a gzip stream (tests); throws std::runtime_error when invalid.
std::string gzip_decompress(std::string_view data);

}  // namespace mx
