#include "exposition/gzip.h"

#include <zlib.h>

#include <stdexcept>

namespace mx {

DeflatedPart deflate_part(std::string_view data, int level, bool final) {
  DeflatedPart part;
  part.length = data.size();
  part.crc32 = static_cast<std::uint32_t>(
      crc32_z(crc32_z(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(data.data()), data.size()));
  z_stream zs{};
  // windowBits -15: raw deflate, no zlib/gzip wrapper (we write the gzip framing ourselves).
  if (deflateInit2(&zs, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    throw std::runtime_error("deflateInit2 failed");
  }
  part.bytes.resize(deflateBound(&zs, data.size()) + 16);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(part.bytes.data());
  zs.avail_out = static_cast<uInt>(part.bytes.size());
  const int rc = deflate(&zs, final ? Z_FINISH : Z_FULL_FLUSH);
  const bool ok = final ? rc == Z_STREAM_END : rc == Z_OK;
  part.bytes.resize(zs.total_out);
  deflateEnd(&zs);
  if (!ok) throw std::runtime_error("deflate failed");
  return part;
}

std::string gzip_header() {
  // magic, CM=deflate, no flags, mtime 0, no extra flags, OS=unknown
  return std::string("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff", 10);
}

std::string gzip_tail(const DeflatedPart& prefix, std::string_view tail, int level) {
  DeflatedPart last = deflate_part(tail, level, true);
  const auto crc = static_cast<std::uint32_t>(
      crc32_combine(prefix.crc32, last.crc32, static_cast<z_off_t>(last.length)));
  const auto size = static_cast<std::uint32_t>(prefix.length + last.length);  // mod 2^32
  std::string out = std::move(last.bytes);
  for (int i = 0; i < 4; ++i) out += static_cast<char>((crc >> (8 * i)) & 0xff);
  for (int i = 0; i < 4; ++i) out += static_cast<char>((size >> (8 * i)) & 0xff);
  return out;
}

std::string gzip_compress(std::string_view data, int level) {
  DeflatedPart empty = deflate_part({}, level, false);
  std::string out = gzip_header();
  out += empty.bytes;
  out += gzip_tail(empty, data, level);
  return out;
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
