#include "exposition/snapshot_builder.h"

#include <algorithm>
#include <functional>
#include <limits>
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

// A group of buckets joins about this much deflate data: a change re-copies its group, and a gzip
// scrape sends one piece per group (~30 pieces for the 0.8 MB gzip body of 10k jobs).
constexpr std::size_t kGroupDeflatedBytes = 32 * 1024;

// Frees a string's buffer. Assigning an empty string would not: a move from a short string
// copies its characters into the buffer the target already has.
void free_string(std::string& s) {
  s.clear();
  s.shrink_to_fit();
}
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

void SnapshotBuilder::compress(Bucket& bucket) {
  bucket.fresh = deflater_.compress(bucket.chunk->text, false);
  bucket.has_fresh = true;
}

ChunkPtr SnapshotBuilder::make_chunk(std::string text) {
  auto chunk = std::make_shared<Chunk>();
  chunk->deflated = deflater_.compress(text, false);
  chunk->text = std::move(text);
  return chunk;
}

void SnapshotBuilder::apply(const ChangeBatch& batch) {
  // Bytes arriving per family: a family that will outgrow its buckets is split before the
  // merge, not after it (the merge would copy every bucket's text once more for nothing).
  std::vector<std::size_t> incoming(families_.size()), starts(families_.size() + 1);
  for (const auto& change : batch.changes()) {
    if (change.family >= families_.size()) throw std::out_of_range("unknown metric family");
    incoming[change.family] += change.lines_length;
    ++starts[change.family + 1];
  }
  for (std::size_t f = 0; f < families_.size(); ++f) {
    Family& family = families_[f];
    std::size_t count = family.buckets.size();
    while (family.bytes + incoming[f] > count * kMaxAverageChunk) count *= 2;
    if (count != family.buckets.size()) grow(family, count);
    starts[f + 1] += starts[f];
  }
  // Grouped by family (a counting sort), in batch order within each.
  pending_.resize(batch.size());
  std::vector<std::size_t> next(starts.begin(), starts.end() - 1);
  std::size_t order = 0;
  for (const auto& change : batch.changes()) {
    const Family& family = families_[change.family];
    pending_[next[change.family]++] = {index_of(family, change.hash), order++, batch.key(change),
                                       batch.lines(change)};
  }
  for (std::size_t f = 0; f < families_.size(); ++f) {
    merge_pending(families_[f], pending_.data() + starts[f], pending_.data() + starts[f + 1]);
    fit(families_[f]);
  }
  pending_.clear();
}

void SnapshotBuilder::merge_pending(Family& family, Pending* first, Pending* last) {
  std::sort(first, last, [](const Pending& a, const Pending& b) {
    if (a.bucket != b.bucket) return a.bucket < b.bucket;
    if (a.key != b.key) return a.key < b.key;
    return a.order < b.order;
  });
  while (first != last) {
    Pending* end = first;
    while (end != last && end->bucket == first->bucket) ++end;
    merge(family, first->bucket, first, end);
    first = end;
  }
}

// Keeps a family's average chunk between kMaxAverageChunk / 8 and kMaxAverageChunk.
void SnapshotBuilder::fit(Family& family) {
  std::size_t count = family.buckets.size();
  while (family.bytes > count * kMaxAverageChunk) count *= 2;
  while (count > 1 && family.bytes * 8 < count * kMaxAverageChunk) count /= 2;
  if (count != family.buckets.size()) resize(family, count);
}

std::uint32_t SnapshotBuilder::intern(std::string_view key) {
  auto it = keys_.find(key);
  if (it == keys_.end()) {
    it = keys_.emplace(std::string(key), KeyInfo{}).first;
    keys_bytes_ += key_bytes(it->first);
    if (free_ids_.empty()) {
      if (key_by_id_.size() > std::numeric_limits<std::uint32_t>::max()) {
        throw std::length_error("over 4 billion metric objects");
      }
      it->second.id = static_cast<std::uint32_t>(key_by_id_.size());
      key_by_id_.push_back(&it->first);
    } else {
      it->second.id = free_ids_.back();
      free_ids_.pop_back();
      key_by_id_[it->second.id] = &it->first;
    }
  }
  ++it->second.refs;
  return it->second.id;
}

void SnapshotBuilder::release(std::uint32_t key) {
  auto it = keys_.find(*key_by_id_[key]);
  if (it != keys_.end() && --it->second.refs == 0) {
    keys_bytes_ -= key_bytes(it->first);
    key_by_id_[key] = nullptr;
    free_ids_.push_back(key);
    keys_.erase(it);
  }
}

const std::string& SnapshotBuilder::Bucket::text() const {
  static const std::string empty;
  return has_staged ? staged : chunk ? chunk->text : empty;
}

// Merges the bucket's entries with its pending changes (sorted by key; of several changes to one
// key the last counts) into a staged text. When every change turns out to be the lines already
// there, nothing is staged: a job that re-rendered without a visible change costs no compression.
void SnapshotBuilder::merge(Family& family, std::size_t index, const Pending* first,
                            const Pending* last) {
  Bucket& bucket = family.buckets[index];
  const std::string& old_text = bucket.text();
  // The last change of each run of one key.
  auto for_each_change = [&](auto&& f) {
    for (const Pending* p = first; p != last; ++p) {
      if (p + 1 != last && p[1].key == p->key) continue;
      f(p->key, p->lines);
    }
  };
  bool changed = false;
  std::size_t size = 0, added = 0;
  {
    auto e = bucket.entries.begin();
    std::size_t at = 0;  // where *e's lines start in old_text
    for_each_change([&](std::string_view key, std::string_view lines) {
      while (e != bucket.entries.end() && key_of(*e) < key) {
        size += e->length;
        at += (e++)->length;
      }
      const bool exists = e != bucket.entries.end() && key_of(*e) == key;
      const std::string_view before =
          exists ? std::string_view(old_text).substr(at, e->length) : std::string_view();
      if (before != lines) changed = true;
      size += lines.size();
      if (exists) {
        at += (e++)->length;
      } else {
        ++added;
      }
    });
    for (; e != bucket.entries.end(); ++e) size += e->length;
  }
  if (!changed) return;

  std::string text;
  text.reserve(size);
  std::vector<Entry> entries;
  entries.reserve(bucket.entries.size() + added);
  std::size_t at = 0;
  auto keep = [&](const Entry& e) {
    entries.push_back(e);
    text.append(old_text, at, e.length);
    at += e.length;
  };
  auto e = bucket.entries.begin();
  for_each_change([&](std::string_view key, std::string_view lines) {
    while (e != bucket.entries.end() && key_of(*e) < key) keep(*e++);
    const bool exists = e != bucket.entries.end() && key_of(*e) == key;
    if (!lines.empty()) {
      entries.push_back({exists ? e->key : intern(key), static_cast<std::uint32_t>(lines.size())});
      text += lines;
    } else if (exists) {
      release(e->key);
    }
    if (exists) at += (e++)->length;
  });
  while (e != bucket.entries.end()) keep(*e++);

  family.bytes = family.bytes - old_text.size() + text.size();
  series_bytes_ = series_bytes_ - old_text.size() + text.size();
  bucket.entries = std::move(entries);
  if (!bucket.has_staged) family.unsealed.push_back(index);
  bucket.staged = std::move(text);  // old_text (maybe the old staged text) is not used after this
  bucket.has_staged = true;
}

// Compresses the staged texts into chunks: once per build, whatever the number of merges.
void SnapshotBuilder::seal(Family& family) {
  for (std::size_t i : family.unsealed) {
    Bucket& bucket = family.buckets[i];
    bucket.entries.shrink_to_fit();
    bucket.chunk = nullptr;
    bucket.piece = {};
    free_string(bucket.fresh.bytes);
    bucket.has_fresh = false;
    if (!bucket.staged.empty()) {
      bucket.chunk = std::make_shared<const Chunk>(Chunk{std::move(bucket.staged), {}});
      compress(bucket);
    }
    free_string(bucket.staged);
    bucket.has_staged = false;
    if (family.per_group != 0) family.groups[i / family.per_group].stale = true;
  }
  family.unsealed.clear();
}

// Chooses how many buckets a group joins, from the buckets' average deflate piece. Only when
// every bucket's piece is fresh (after a resize or a gzip level change, or at the first build):
// the groups are made anew from them.
void SnapshotBuilder::lay_out_groups(Family& family) {
  std::size_t deflated = 0, pieces = 0;
  for (auto& bucket : family.buckets) {
    if (!bucket.chunk) continue;
    if (!bucket.has_fresh) compress(bucket);  // not expected; keeps the bytes right regardless
    deflated += bucket.fresh.bytes.size();
    ++pieces;
  }
  const std::size_t average = pieces ? std::max<std::size_t>(1, deflated / pieces) : 1;
  std::size_t per_group = 1;
  while (per_group * 2 <= family.buckets.size() && per_group * 2 * average <= kGroupDeflatedBytes)
    per_group *= 2;
  family.per_group = per_group;
  family.groups.assign(family.buckets.size() / per_group, Group{});
}

void SnapshotBuilder::join(Family& family) {
  if (family.per_group == 0) lay_out_groups(family);
  for (std::size_t g = 0; g < family.groups.size(); ++g) {
    if (family.groups[g].stale) join(family, g);
  }
}

// Remakes a group's joined piece: fresh pieces are moved in, the others copied from the
// previous joined piece (which scrapes of the previous snapshot may still be sending).
void SnapshotBuilder::join(Family& family, std::size_t group) {
  Group& g = family.groups[group];
  const auto first = family.buckets.begin() + static_cast<std::ptrdiff_t>(group * family.per_group);
  const auto last = first + static_cast<std::ptrdiff_t>(family.per_group);
  auto joined = std::make_shared<DeflatedPart>();
  std::size_t size = 0;
  for (auto it = first; it != last; ++it)
    size += it->has_fresh ? it->fresh.bytes.size() : it->piece.size;
  joined->bytes.reserve(size);
  for (auto it = first; it != last; ++it) {
    Bucket& bucket = *it;
    if (!bucket.chunk) continue;
    Piece piece{joined->bytes.size(), 0, 0, 0};
    if (bucket.has_fresh) {
      joined->bytes += bucket.fresh.bytes;
      piece.size = bucket.fresh.bytes.size();
      piece.crc32 = bucket.fresh.crc32;
      piece.length = bucket.fresh.length;
      free_string(bucket.fresh.bytes);
      bucket.has_fresh = false;
    } else {
      joined->bytes.append(g.joined->bytes, bucket.piece.offset, bucket.piece.size);
      piece.size = bucket.piece.size;
      piece.crc32 = bucket.piece.crc32;
      piece.length = bucket.piece.length;
    }
    joined->crc32 = combine_crc32(joined->crc32, piece.crc32, piece.length);
    joined->length += piece.length;
    bucket.piece = piece;
  }
  g.joined = std::move(joined);
  g.stale = false;
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
// apply() grows a family before it merges the batch into it.
void SnapshotBuilder::grow(Family& family, std::size_t count) {
  std::vector<Bucket> old = std::exchange(family.buckets, std::vector<Bucket>(count));
  family.unsealed.clear();
  family.per_group = 0;  // every piece will be fresh: the groups are laid out anew
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
      const std::size_t t = index_of(family, object_hash(key_of(e)));
      targets.push_back(t);
      bytes[t / n] += e.length;
      ++lines[t / n];
    }
    for (std::size_t t = i; t < count; t += n) {
      family.buckets[t].staged.reserve(bytes[t / n]);
      family.buckets[t].entries.reserve(lines[t / n]);
    }
    std::size_t at = 0;
    for (std::size_t k = 0; k < bucket.entries.size(); ++k) {
      const Entry& e = bucket.entries[k];
      Bucket& target = family.buckets[targets[k]];
      target.entries.push_back(e);
      target.staged.append(text, at, e.length);
      target.has_staged = true;
      at += e.length;
    }
    // Frees the old text before the next bucket's lines are copied (moved out, not assigned
    // over: see free_string).
    const Bucket freed = std::move(bucket);
  }
  for (std::size_t i = 0; i < count; ++i) {
    if (family.buckets[i].has_staged) family.unsealed.push_back(i);
  }
}

// Re-spreads a family's objects over fewer buckets: several old buckets feed one new bucket, so
// their lines go through a sorted merge as pending changes that view the old texts. Only after a
// merge; amortised over the shrinkage that caused it.
void SnapshotBuilder::shrink(Family& family, std::size_t count) {
  std::vector<Bucket> old = std::exchange(family.buckets, std::vector<Bucket>(count));
  family.unsealed.clear();
  family.per_group = 0;  // every piece will be fresh: the groups are laid out anew
  std::vector<Pending> pending;
  for (auto& bucket : old) {
    const std::string& text = bucket.text();
    std::size_t at = 0;
    for (const auto& e : bucket.entries) {
      const std::string& key = key_of(e);
      pending.push_back({index_of(family, object_hash(key)), pending.size(), key,
                         std::string_view(text).substr(at, e.length)});
      at += e.length;
    }
    family.bytes -= text.size();
    series_bytes_ -= text.size();
  }
  merge_pending(family, pending.data(), pending.data() + pending.size());
  for (auto& bucket : old) {  // after the merge: the pending changes view these keys and texts
    for (const auto& e : bucket.entries) release(e.key);
  }
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
  bool header_written = false;  // for the family the current one continues, if it does
  for (std::size_t i = 0; i < families_.size(); ++i) {
    Family& family = families_[i];
    seal(family);
    join(family);

    if (!descs_[i].continues) header_written = false;
    if (family.bytes == 0) continue;
    const bool with_header = !header_written;
    header_written = true;
    for (int f = 0; f < 2; ++f) {
      if (with_header) {
        const ChunkPtr& header = family.header[f];
        append(views[f], header);
        append_deflated(views[f], Bytes(header, &header->deflated.bytes), header->deflated);
      }
      for (const auto& bucket : family.buckets) {
        if (bucket.chunk) append(views[f], bucket.chunk);
      }
      for (const auto& group : family.groups) {
        if (group.joined->length == 0) continue;  // its buckets are empty
        append_deflated(views[f], Bytes(group.joined, &group.joined->bytes), *group.joined);
      }
    }
  }
  return std::make_shared<const Snapshot>(std::move(views[0]), std::move(views[1]), ++generation_);
}

void SnapshotBuilder::set_gzip_level(int level) {
  if (level == deflater_.level()) return;
  deflater_.set_level(level);
  for (auto& family : families_) {
    for (auto& header : family.header) header = make_chunk(header->text);
    for (auto& bucket : family.buckets) {
      if (bucket.chunk) compress(bucket);
    }
    family.per_group = 0;
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
    n += family.groups.capacity() * sizeof(Group);
    for (const auto& group : family.groups) {
      if (group.joined) n += sizeof(DeflatedPart) + group.joined->bytes.capacity();
    }
    for (const auto& bucket : family.buckets) {
      n += bucket.entries.capacity() * sizeof(Entry) + bucket.fresh.bytes.capacity();
      if (bucket.chunk) n += sizeof(Chunk) + bucket.chunk->text.capacity();
    }
  }
  return n + keys_bytes_ + free_ids_.capacity() * sizeof(std::uint32_t);
}

FamilyId FamilySet::add_family(FamilyDesc desc) {
  if (builder_) throw std::logic_error("metric family added after the first publish");
  descs_.push_back(std::move(desc));
  return descs_.size() - 1;
}

void ChangeBatch::add(FamilyId family, std::string_view key, std::string_view lines) {
  Change change{family,
                0,
                0,
                bytes_.size(),
                static_cast<std::uint32_t>(key.size()),
                static_cast<std::uint32_t>(lines.size())};
  if (key.size() != change.key_length || lines.size() != change.lines_length) {
    throw std::length_error("metric object or lines over 4 GiB");
  }
  if (!changes_.empty() && key == this->key(changes_.back())) {
    change.hash = changes_.back().hash;
    change.key_offset = changes_.back().key_offset;
  } else {
    change.hash = object_hash(key);
    change.key_offset = bytes_.size();
    bytes_ += key;
    change.lines_offset = bytes_.size();
  }
  bytes_ += lines;
  changes_.push_back(change);
}

void FamilySet::set(FamilyId family, std::string_view object_key, std::string_view lines) {
  if (family >= descs_.size()) throw std::out_of_range("unknown metric family");
  changes_.add(family, object_key, lines);
}

ChangeBatch FamilySet::take_changes(ChangeBatch next) {
  next.clear();
  // The next slice is about as large: an eighth more room, so that it rarely re-allocates.
  next.reserve(changes_.size() + changes_.size() / 8, changes_.bytes() + changes_.bytes() / 8);
  return std::exchange(changes_, std::move(next));
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
