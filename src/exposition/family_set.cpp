#include "exposition/family_set.h"

#include <algorithm>
#include <functional>
#include <stdexcept>

#include "common/object_hash.h"

namespace mx {

namespace {
// A family's chunks average at most this much text; above it the bucket count doubles, below an
// eighth of it the count halves (hysteresis: a family does not flap around one size). Each chunk
// is deflated on its own, so small chunks compress worse: at 10k jobs 16 KiB made a 0.93 MB gzip
// body, 64 KiB 0.79 MB (nginx's whole-file gzip -6: 0.73 MB) and ~40 % more gzip scrapes/s, at
// no cost in start-up CPU or memory (bench/real-binary.sh). 128 and 256 KiB shrank the body
// little more and cost start-up CPU (every merge of a slice copies whole chunks).
constexpr std::size_t kMaxAverageChunk = 64 * 1024;
}  // namespace

SnapshotBuilder::SnapshotBuilder(std::vector<FamilyDesc> families, int gzip_level)
    : descs_(std::move(families)), families_(descs_.size()), deflater_(gzip_level) {
  const ExpositionFormat formats[2] = {ExpositionFormat::text, ExpositionFormat::openmetrics};
  for (std::size_t f = 0; f < descs_.size(); ++f) {
    families_[f].buckets.resize(1);
    for (int i = 0; i < 2; ++i) {
      std::string header;
      append_family_header(header, formats[i], descs_[f].name, descs_[f].help, descs_[f].type);
      families_[f].header[i] = make_chunk(std::move(header));
    }
  }
}

ChunkPtr SnapshotBuilder::make_chunk(std::string text) {
  auto chunk = std::make_shared<Chunk>();
  chunk->deflated = deflater_.compress(text, false);
  chunk->text = std::move(text);
  return chunk;
}

std::size_t SnapshotBuilder::index_of(const Family& family, std::string_view key) {
  return object_hash(key) & (family.buckets.size() - 1);
}

SnapshotBuilder::Bucket& SnapshotBuilder::bucket_of(Family& family, std::string_view key) {
  const std::size_t i = index_of(family, key);
  Bucket& bucket = family.buckets[i];
  if (bucket.pending.empty()) family.dirty.push_back(i);
  return bucket;
}

void SnapshotBuilder::apply(ChangeBatch batch) {
  // Bytes arriving per family: a family that will outgrow its buckets is split before the
  // merge, not after it (the merge would copy every bucket's text once more for nothing).
  std::vector<std::size_t> incoming(families_.size());
  for (const auto& change : batch) {
    if (change.family >= families_.size()) throw std::out_of_range("unknown metric family");
    incoming[change.family] += change.lines.size();
  }
  for (std::size_t f = 0; f < families_.size(); ++f) {
    Family& family = families_[f];
    std::size_t count = family.buckets.size();
    while (family.bytes + incoming[f] > count * kMaxAverageChunk) count *= 2;
    if (count != family.buckets.size()) grow(family, count);
  }
  for (auto& change : batch) {
    Bucket& bucket = bucket_of(families_[change.family], change.key);
    auto it = bucket.pending.find(change.key);
    if (it == bucket.pending.end()) {
      bucket.pending.emplace(std::move(change.key), std::move(change.lines));
    } else {
      it->second = std::move(change.lines);  // the later change wins
    }
  }
  batch.clear();
  for (auto& family : families_) {
    merge_dirty(family);
    fit(family);
  }
}

// Keeps a family's average chunk between kMaxAverageChunk / 8 and kMaxAverageChunk.
void SnapshotBuilder::fit(Family& family) {
  std::size_t count = family.buckets.size();
  while (family.bytes > count * kMaxAverageChunk) count *= 2;
  while (count > 1 && family.bytes * 8 < count * kMaxAverageChunk) count /= 2;
  if (count != family.buckets.size()) resize(family, count);
}

const std::string* SnapshotBuilder::intern(std::string_view key) {
  auto it = keys_.find(key);
  if (it == keys_.end()) {
    it = keys_.emplace(std::string(key), 0).first;
    keys_bytes_ += key_bytes(it->first);
  }
  ++it->second;
  return &it->first;
}

void SnapshotBuilder::release(const std::string* key) {
  auto it = keys_.find(*key);
  if (it != keys_.end() && --it->second == 0) {
    keys_bytes_ -= key_bytes(it->first);
    keys_.erase(it);
  }
}

const std::string& SnapshotBuilder::Bucket::text() const {
  static const std::string empty;
  return has_staged ? staged : chunk ? chunk->text : empty;
}

// Merges the bucket's entries with its pending changes (both sorted by key) into a staged text.
// When every pending change turns out to be the lines already there, nothing is staged: a job
// that re-rendered without a visible change costs no compression.
void SnapshotBuilder::merge(Family& family, std::size_t index) {
  Bucket& bucket = family.buckets[index];
  const std::string& old_text = bucket.text();
  bool changed = false;
  std::size_t size = 0;
  {
    auto e = bucket.entries.begin();
    for (const auto& [key, lines] : bucket.pending) {
      while (e != bucket.entries.end() && *e->key < key) size += (e++)->length;
      const bool exists = e != bucket.entries.end() && *e->key == key;
      const std::string_view before =
          exists ? std::string_view(old_text).substr(e->offset, e->length) : std::string_view();
      if (before != lines) changed = true;
      size += lines.size();
      if (exists) ++e;
    }
    for (; e != bucket.entries.end(); ++e) size += e->length;
  }
  if (!changed) {
    bucket.pending.clear();
    return;
  }

  std::string text;
  text.reserve(size);
  std::vector<Entry> entries;
  entries.reserve(bucket.entries.size() + bucket.pending.size());
  auto keep = [&](const Entry& e) {
    entries.push_back({e.key, static_cast<std::uint32_t>(text.size()), e.length});
    text.append(old_text, e.offset, e.length);
  };
  auto e = bucket.entries.begin();
  for (auto& [key, lines] : bucket.pending) {
    while (e != bucket.entries.end() && *e->key < key) keep(*e++);
    const bool exists = e != bucket.entries.end() && *e->key == key;
    if (!lines.empty()) {
      entries.push_back({exists ? e->key : intern(key), static_cast<std::uint32_t>(text.size()),
                         static_cast<std::uint32_t>(lines.size())});
      text += lines;
    } else if (exists) {
      release(e->key);
    }
    if (exists) ++e;
  }
  while (e != bucket.entries.end()) keep(*e++);

  family.bytes = family.bytes - old_text.size() + text.size();
  series_bytes_ = series_bytes_ - old_text.size() + text.size();
  bucket.pending.clear();
  bucket.entries = std::move(entries);
  if (!bucket.has_staged) family.unsealed.push_back(index);
  bucket.staged = std::move(text);  // old_text (maybe the old staged text) is not used after this
  bucket.has_staged = true;
}

void SnapshotBuilder::merge_dirty(Family& family) {
  for (std::size_t i : family.dirty) merge(family, i);
  family.dirty.clear();
}

// Compresses the staged texts into chunks: once per build, whatever the number of merges.
void SnapshotBuilder::seal(Family& family) {
  for (std::size_t i : family.unsealed) {
    Bucket& bucket = family.buckets[i];
    bucket.entries.shrink_to_fit();
    bucket.chunk = bucket.staged.empty() ? nullptr : make_chunk(std::move(bucket.staged));
    bucket.staged = std::string();
    bucket.has_staged = false;
    family.joined_stale = true;
  }
  family.unsealed.clear();
}

void SnapshotBuilder::join(Family& family) {
  auto joined = std::make_shared<DeflatedPart>();
  std::size_t size = 0;
  for (const auto& bucket : family.buckets)
    size += bucket.chunk ? bucket.chunk->deflated.bytes.size() : 0;
  joined->bytes.reserve(size);
  for (const auto& bucket : family.buckets) {
    if (!bucket.chunk) continue;
    const DeflatedPart& piece = bucket.chunk->deflated;
    joined->bytes += piece.bytes;
    joined->crc32 = combine_crc32(joined->crc32, piece.crc32, piece.length);
    joined->length += piece.length;
  }
  family.joined = std::move(joined);
  family.joined_stale = false;
}

void SnapshotBuilder::resize(Family& family, std::size_t count) {
  if (count > family.buckets.size()) {
    grow(family, count);
  } else {
    shrink(family, count);
  }
}

// Splits every bucket into count / size() buckets. The bucket index is the key's hash masked to
// the bucket count, so a new bucket's objects all come from one old bucket and keep their order:
// each object's lines are copied once, in order, with no sorting and no per-object allocation.
// Only between merges (no pending changes): apply() grows before it queues the batch.
void SnapshotBuilder::grow(Family& family, std::size_t count) {
  std::vector<Bucket> old = std::exchange(family.buckets, std::vector<Bucket>(count));
  family.dirty.clear();
  family.unsealed.clear();
  // Old bucket i feeds new buckets i, i + n, i + 2n, ... (n = old.size()). Their sizes are
  // counted first so that each new text and entry list is allocated once, exactly: appending
  // would re-allocate as it grows and leave up to half of each text unused until its next merge.
  const std::size_t n = old.size();
  std::vector<std::size_t> targets;                             // new bucket of each entry
  std::vector<std::size_t> bytes(count / n), lines(count / n);  // by new bucket / n
  for (std::size_t i = 0; i < n; ++i) {
    Bucket& bucket = old[i];
    const std::string& text = bucket.text();
    targets.clear();
    std::fill(bytes.begin(), bytes.end(), 0);
    std::fill(lines.begin(), lines.end(), 0);
    for (const auto& e : bucket.entries) {
      const std::size_t t = index_of(family, *e.key);
      targets.push_back(t);
      bytes[t / n] += e.length;
      ++lines[t / n];
    }
    for (std::size_t t = i; t < count; t += n) {
      family.buckets[t].staged.reserve(bytes[t / n]);
      family.buckets[t].entries.reserve(lines[t / n]);
    }
    for (std::size_t k = 0; k < bucket.entries.size(); ++k) {
      const Entry& e = bucket.entries[k];
      Bucket& target = family.buckets[targets[k]];
      target.entries.push_back({e.key, static_cast<std::uint32_t>(target.staged.size()), e.length});
      target.staged.append(text, e.offset, e.length);
      target.has_staged = true;
    }
    bucket = Bucket{};  // frees the old text before the next bucket's lines are copied
  }
  for (std::size_t i = 0; i < count; ++i) {
    if (family.buckets[i].has_staged) family.unsealed.push_back(i);
  }
  family.joined_stale = true;
}

// Re-spreads a family's objects over fewer buckets: several old buckets feed one new bucket, so
// their lines go through the new buckets' pending changes (a sorted merge). Only after a merge
// (no pending changes left); amortised over the shrinkage that caused it.
void SnapshotBuilder::shrink(Family& family, std::size_t count) {
  std::vector<Bucket> old = std::exchange(family.buckets, std::vector<Bucket>(count));
  family.dirty.clear();
  family.unsealed.clear();
  for (auto& bucket : old) {
    const std::string& text = bucket.text();
    for (const auto& e : bucket.entries) {
      Bucket& target = bucket_of(family, *e.key);
      target.pending.emplace(*e.key, text.substr(e.offset, e.length));
      release(e.key);
    }
    family.bytes -= text.size();
    series_bytes_ -= text.size();
    bucket = Bucket{};  // frees the old text before the next bucket's lines are copied
  }
  merge_dirty(family);
}

std::shared_ptr<const Snapshot> SnapshotBuilder::build() {
  Snapshot::View views[2];  // text, OpenMetrics
  auto append = [](Snapshot::View& v, const ChunkPtr& chunk) {
    v.plain.emplace_back(chunk, &chunk->text);
  };
  auto append_deflated = [](Snapshot::View& v, const Bytes& bytes, const DeflatedPart& part) {
    v.deflated.push_back(bytes);
    v.crc32 = combine_crc32(v.crc32, part.crc32, part.length);
    v.size += part.length;
  };
  for (auto& family : families_) {
    merge_dirty(family);
    fit(family);
    seal(family);
    if (family.joined_stale) join(family);

    if (family.bytes == 0) continue;
    for (int f = 0; f < 2; ++f) {
      const ChunkPtr& header = family.header[f];
      append(views[f], header);
      append_deflated(views[f], Bytes(header, &header->deflated.bytes), header->deflated);
      for (const auto& bucket : family.buckets) {
        if (bucket.chunk) append(views[f], bucket.chunk);
      }
      append_deflated(views[f], Bytes(family.joined, &family.joined->bytes), *family.joined);
    }
  }
  return std::make_shared<const Snapshot>(std::move(views[0]), std::move(views[1]),
                                          deflater_.level(), ++generation_);
}

void SnapshotBuilder::set_gzip_level(int level) {
  if (level == deflater_.level()) return;
  deflater_.set_level(level);
  for (auto& family : families_) {
    for (auto& header : family.header) header = make_chunk(header->text);
    for (auto& bucket : family.buckets) {
      if (bucket.chunk) bucket.chunk = make_chunk(bucket.chunk->text);
    }
    family.joined_stale = true;
  }
}

std::size_t SnapshotBuilder::chunks() const {
  std::size_t n = 0;
  for (const auto& family : families_) {
    for (const auto& bucket : family.buckets) n += bucket.chunk ? 1 : 0;
  }
  return n;
}

std::size_t SnapshotBuilder::memory_bytes() const {
  std::size_t n = 0;
  for (const auto& family : families_) {
    n += family.buckets.capacity() * sizeof(Bucket);
    if (family.joined) n += sizeof(DeflatedPart) + family.joined->bytes.capacity();
    for (const auto& bucket : family.buckets) {
      n += bucket.entries.capacity() * sizeof(Entry);
      if (bucket.chunk) {
        n +=
            sizeof(Chunk) + bucket.chunk->text.capacity() + bucket.chunk->deflated.bytes.capacity();
      }
    }
  }
  return n + keys_bytes_;
}

FamilyId FamilySet::add_family(FamilyDesc desc) {
  if (builder_) throw std::logic_error("metric family added after the first publish");
  descs_.push_back(std::move(desc));
  return descs_.size() - 1;
}

void FamilySet::set(FamilyId family, std::string_view object_key, std::string lines) {
  if (family >= descs_.size()) throw std::out_of_range("unknown metric family");
  changes_.push_back({family, std::string(object_key), std::move(lines)});
}

void FamilySet::remove_object(std::string_view object_key) {
  for (FamilyId f = 0; f < descs_.size(); ++f) set(f, object_key, {});
}

std::shared_ptr<const Snapshot> FamilySet::publish(int gzip_level) {
  if (!builder_) builder_ = std::make_unique<SnapshotBuilder>(descs_, gzip_level);
  builder_->set_gzip_level(gzip_level);
  builder_->apply(take_changes());
  return builder_->build();
}

}  // namespace mx
