#include "exposition/gzip.h"

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace mx {

Deflater::Deflater(int level) : level_(level) {
  init(level);
}

void Deflater::init(int level) {
  zs_ = z_stream{};
  zs_.zalloc = &Deflater::allocate;
  zs_.zfree = &Deflater::release;
  zs_.opaque = this;
  // Negative windowBits: raw deflate, no zlib/gzip wrapper (the gzip framing is written here).
  // Stored blocks are the same whatever the window (zlib copies the input straight out when the
  // output has room, as it has here: deflateBound), so level 0 takes the smallest (9 bits,
  // memLevel 1).
  const bool stored = level == 0;
  if (deflateInit2(&zs_, level, Z_DEFLATED, stored ? -9 : -15, stored ? 1 : 8,
                   Z_DEFAULT_STRATEGY) != Z_OK) {
    throw std::runtime_error("deflateInit2 failed");
  }
}

// Each block carries its size in front (one alignment unit), so release() knows what it frees.
constexpr std::size_t kBlockHeader = alignof(std::max_align_t);

voidpf Deflater::allocate(voidpf self, uInt items, uInt size) {
  const std::size_t bytes = static_cast<std::size_t>(items) * size;
  auto* start = static_cast<unsigned char*>(std::malloc(kBlockHeader + bytes));
  if (!start) return Z_NULL;
  std::memcpy(start, &bytes, sizeof bytes);
  static_cast<Deflater*>(self)->state_bytes_ += bytes;
  return start + kBlockHeader;
}

void Deflater::release(voidpf self, voidpf block) {
  auto* start = static_cast<unsigned char*>(block) - kBlockHeader;
  std::size_t bytes = 0;
  std::memcpy(&bytes, start, sizeof bytes);
  static_cast<Deflater*>(self)->state_bytes_ -= bytes;
  std::free(start);
}

Deflater::~Deflater() {
  deflateEnd(&zs_);
}

void Deflater::set_level(int level) {
  if ((level == 0) != (level_ == 0)) {
    deflateEnd(&zs_);
    level_ = level;
    init(level);
    return;
  }
  if (deflateReset(&zs_) != Z_OK || deflateParams(&zs_, level, Z_DEFAULT_STRATEGY) != Z_OK) {
    throw std::runtime_error("deflateParams failed");
  }
  level_ = level;
}

DeflatedPart Deflater::compress(std::string_view data, bool final) {
  DeflatedPart part;
  part.length = data.size();
  part.crc32 = static_cast<std::uint32_t>(
      crc32_z(crc32_z(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(data.data()), data.size()));
  if (deflateReset(&zs_) != Z_OK) throw std::runtime_error("deflateReset failed");
  // deflateBound covers the worst case; the flush marker adds a few bytes.
  const std::size_t bound = deflateBound(&zs_, data.size()) + 16;
  if (scratch_.size() < bound) scratch_.resize(bound);
  zs_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs_.avail_in = static_cast<uInt>(data.size());
  zs_.next_out = reinterpret_cast<Bytef*>(scratch_.data());
  zs_.avail_out = static_cast<uInt>(bound);
  const int rc = deflate(&zs_, final ? Z_FINISH : Z_FULL_FLUSH);
  const bool ok = final ? rc == Z_STREAM_END : rc == Z_OK && zs_.avail_in == 0;
  if (!ok) throw std::runtime_error("deflate failed");
  // Copied out exactly: a snapshot keeps thousands of these, slack would double the memory.
  part.bytes.assign(scratch_.data(), bound - zs_.avail_out);
  // A large one-off piece must not pin its scratch buffer for the life of the compressor.
  if (scratch_.size() > (1u << 20)) std::string().swap(scratch_);
  return part;
}

DeflatedPart deflate_part(std::string_view data, int level, bool final) {
  Deflater deflater(level);
  return deflater.compress(data, final);
}

std::uint32_t combine_crc32(std::uint32_t a, std::uint32_t b, std::uint64_t b_length) {
  return static_cast<std::uint32_t>(crc32_combine(a, b, static_cast<z_off_t>(b_length)));
}

namespace {
// The final piece, then the gzip trailer: the CRC-32 and length (mod 2^32) of everything.
std::string gzip_trailer(DeflatedPart last, std::uint32_t prefix_crc, std::uint64_t prefix_length) {
  const std::uint32_t crc = combine_crc32(prefix_crc, last.crc32, last.length);
  const auto size = static_cast<std::uint32_t>(prefix_length + last.length);  // mod 2^32
  std::string out = std::move(last.bytes);
  for (int i = 0; i < 4; ++i) out += static_cast<char>((crc >> (8 * i)) & 0xff);
  for (int i = 0; i < 4; ++i) out += static_cast<char>((size >> (8 * i)) & 0xff);
  return out;
}
}  // namespace

std::string gzip_header() {
  // magic, CM=deflate, no flags, mtime 0, no extra flags, OS=unknown
  return std::string("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff", 10);
}

std::string gzip_tail(std::uint32_t prefix_crc, std::uint64_t prefix_length,
                      std::string_view tail) {
  // Stored, not compressed (level 0): deflating the ~6 KiB of self-metrics took ~20 us per
  // scrape, a sixth of the CPU of a gzip scrape of 10k jobs, to save ~4 KiB on the wire. One
  // compressor per thread, reset per tail, rather than zlib's state made on every scrape.
  thread_local Deflater deflater(0);
  return gzip_trailer(deflater.compress(tail, true), prefix_crc, prefix_length);
}

std::string gzip_compress(std::string_view data, int level) {
  return gzip_header() + gzip_trailer(deflate_part(data, level, true), 0, 0);
}

std::string gzip_decompress(std::string_view data) {
  z_stream zs{};
  if (inflateInit2(&zs, 16 + 15) != Z_OK) throw std::runtime_error("inflateInit2 failed");
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  std::string out;
  char buf[65536];
  int rc = Z_OK;
  while (rc == Z_OK) {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof buf;
    rc = inflate(&zs, Z_NO_FLUSH);
    out.append(buf, sizeof buf - zs.avail_out);
    if (rc == Z_BUF_ERROR && zs.avail_in == 0) break;
  }
  inflateEnd(&zs);
  if (rc != Z_STREAM_END) throw std::runtime_error("invalid gzip stream");
  return out;
}

}  // namespace mx
