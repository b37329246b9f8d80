// gzip built from independent deflate pieces: every chunk of a snapshot is compressed once, on
// its own, ending on a full flush (byte-aligned, no back-references out of the piece), and a
// small tail is compressed per scrape (the self-metrics, which change on every scrape). The
// pieces join into one valid gzip member whose CRC is combined arithmetically
// (crc32_combine), so nothing is compressed twice and no piece is copied to join them.
#pragma once

#include <zlib.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace mx {

struct DeflatedPart {
  std::string bytes;         // raw deflate data
  std::uint32_t crc32 = 0;   // of the uncompressed input
  std::uint64_t length = 0;  // uncompressed length
};

// A reusable raw-deflate compressor: one z_stream (~270 KiB of zlib state) reset per piece
// instead of allocated per piece. Level 0 only stores, which needs neither a 32 KiB window nor
// hash chains: it gets zlib's smallest state (a few KiB), so a compressor kept for stored tails
// costs neither the memory nor the 64 KiB cleared on every reset. Not thread-safe; one per
// thread that compresses.
class Deflater {
 public:
  explicit Deflater(int level);
  ~Deflater();
  Deflater(const Deflater&) = delete;
  Deflater& operator=(const Deflater&) = delete;

  // Raw deflate of `data`. final=false ends with a full flush (more pieces may follow);
  // final=true ends the deflate stream. The result holds exactly its bytes (no slack).
  DeflatedPart compress(std::string_view data, bool final);
  int level() const { return level_; }
  // From or to level 0 the state is made again in the size the new level needs.
  void set_level(int level);
  // Bytes zlib holds for this compressor (its state, window, hash chains and pending buffer).
  std::size_t state_bytes() const { return state_bytes_; }

 private:
  void init(int level);
  static voidpf allocate(voidpf self, uInt items, uInt size);
  static void release(voidpf self, voidpf block);

  z_stream zs_{};
  int level_;
  std::size_t state_bytes_ = 0;
  std::string scratch_;
};

// One-off compression with a temporary Deflater (tests).
DeflatedPart deflate_part(std::string_view data, int level, bool final);

// The CRC and length of pieces a + b from theirs.
std::uint32_t combine_crc32(std::uint32_t a, std::uint32_t b, std::uint64_t b_length);

std::string gzip_header();
// The tail of a gzip stream whose earlier pieces (after gzip_header()) hold `prefix_length`
// bytes with CRC `prefix_crc`: `tail` deflated as the final piece, then the trailer covering
// prefix + tail. The tail (the self-metrics, a few KiB made on every scrape) is stored, not
// compressed, whatever the snapshot's level: compressing it took a sixth of the CPU of a gzip
// scrape of 10k jobs, to save ~0.5 % of that body.
std::string gzip_tail(std::uint32_t prefix_crc, std::uint64_t prefix_length, std::string_view tail);

// Whole gzip of one buffer (tests, small responses).
std::string gzip_compress(std::string_view data, int level);
// Inflates a gzip stream (tests); throws std::runtime_error when invalid.
std::string gzip_decompress(std::string_view data);

}  // namespace mx
