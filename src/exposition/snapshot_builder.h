// The snapshot builder: keeps the rendered metric families so that the next exposition snapshot
// costs what changed (docs/design.md, step 4).
//
// The derivation writes the lines each object (a job UID, or "" for an aggregate) contributes to
// each family into a FamilySet, which only records the change. A SnapshotBuilder applies the
// changes and makes the next Snapshot. Each family's objects are spread over buckets by a hash of
// their key; a bucket is one chunk of the snapshot, holding its text and that text deflated. A
// change re-renders and re-compresses only its bucket (tens of KiB); every other chunk of the new
// snapshot is the previous one's, shared. A family's bucket count doubles (or halves) as its
// text grows (or shrinks), so a chunk stays between ~8 and ~64 KiB: small enough that one change
// is cheap (about a millisecond), large enough that deflate still finds the repetition of label
// names across many objects.
//
// Threads: a FamilySet lives on the thread that runs the derivation; its builder may run on
// another (exposition/publisher.h) as long as one thread at a time uses it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "exposition/gzip.h"
#include "exposition/snapshot.h"
#include "exposition/text_format.h"

namespace mx {

struct FamilyDesc {
  std::string name;  // sample name for counters includes "_total"
  std::string help;
  MetricType type;
  // More lines of the family added just before this one (same name, help and type), rendered
  // right after it under one HELP/TYPE: a family split in two, so that the part that changes
  // more often sits in chunks of its own and re-compresses without the rest.
  bool continues = false;
};

using FamilyId = std::size_t;

// The changes the derivation made since the last hand-over: for each, the family, the object's
// key and its new lines (empty lines remove the object from the family). Keys and lines are
// appended to one buffer, not held as a string each: a start-up slice is ~7,500 changes, and a
// string pair per change cost two allocations here and two frees on the builder's thread. A key
// repeated by consecutive changes (one job's families) is stored and hashed once.
class ChangeBatch {
 public:
  struct Change {
    FamilyId family;
    std::size_t hash;  // object_hash(key): picks the key's bucket
    std::size_t key_offset;
    std::size_t lines_offset;
    std::uint32_t key_length;
    std::uint32_t lines_length;
  };

  // Copies `key` and `lines` in; `lines` may be empty (a removal).
  void add(FamilyId family, std::string_view key, std::string_view lines);
  const std::vector<Change>& changes() const { return changes_; }
  std::string_view key(const Change& c) const {
    return {bytes_.data() + c.key_offset, c.key_length};
  }
  std::string_view lines(const Change& c) const {
    return {bytes_.data() + c.lines_offset, c.lines_length};
  }
  bool empty() const { return changes_.empty(); }
  std::size_t size() const { return changes_.size(); }
  // Room for what the previous batch held, so a slice's buffer grows without copies.
  void reserve(std::size_t changes, std::size_t bytes) {
    changes_.reserve(changes);
    bytes_.reserve(bytes);
  }
  // Empties the batch and keeps its buffers (see Publisher::take_spare_batch).
  void clear() {
    changes_.clear();
    bytes_.clear();
  }
  std::size_t bytes() const { return bytes_.size(); }
  std::size_t capacity() const { return bytes_.capacity(); }
  void swap(ChangeBatch& other) noexcept {
    bytes_.swap(other.bytes_);
    changes_.swap(other.changes_);
  }

 private:
  std::string bytes_;
  std::vector<Change> changes_;
};

class SnapshotBuilder {
 public:
  SnapshotBuilder(std::vector<FamilyDesc> families, int gzip_level);

  // Merges the changes into the buckets' texts (the batch is not needed after the call).
  // Compression waits for build(), so a fleet applied in slices is compressed once.
  void apply(const ChangeBatch& batch);
  // Re-renders the buckets that changed and returns the next snapshot.
  std::shared_ptr<const Snapshot> build();

  int gzip_level() const { return deflater_.level(); }
  // Re-compresses every chunk at `level` (a config reload changed web.gzip_level).
  void set_gzip_level(int level);

  std::size_t series_bytes() const { return series_bytes_; }
  std::size_t chunks() const;
  // Bytes held: chunk texts, deflate pieces (joined per group, and fresh ones not joined
  // yet), the bucket indexes and the interned keys.
  std::size_t memory_bytes() const;

 private:
  // An object's lines inside its bucket's chunk text, which holds its entries' lines in order
  // (an entry's offset is the sum of the lengths before it: every reader walks them in order).
  // The key is an interned key's id (keys_): every family of a job refers to one string, and
  // an entry takes 8 bytes (100,000 of them at 10k jobs).
  struct Entry {
    std::uint32_t key;
    std::uint32_t length;
  };
  // Where a bucket's deflate piece sits in its group's joined piece.
  struct Piece {
    std::size_t offset = 0;
    std::size_t size = 0;
    std::uint32_t crc32 = 0;
    std::uint64_t length = 0;  // of the text
  };
  struct Bucket {
    std::vector<Entry> entries;  // sorted by key (stable output); offsets into text()
    ChunkPtr chunk;              // as in the last snapshot; null while empty
    std::string staged;          // merged since, not compressed yet (when has_staged)
    bool has_staged = false;
    Piece piece;         // chunk's deflate, in its group's joined piece (unless fresh)
    DeflatedPart fresh;  // chunk's deflate, compressed since the last join (when has_fresh)
    bool has_fresh = false;
    const std::string& text() const;
  };
  // A change waiting to be merged: views into the batch being applied (or, in shrink(), into
  // the old buckets' texts), which outlive the merge.
  struct Pending {
    std::size_t bucket;
    std::size_t order;  // position in the batch: the later change to a key wins
    std::string_view key;
    std::string_view lines;
  };
  // The deflate pieces of a run of consecutive buckets, joined (what gzip scrapes send): the
  // only copy of the pieces, remade from itself and the fresh pieces when one of its buckets
  // changes. A group, not the whole family: a family's joined deflate is up to ~250 KB at 10k
  // jobs, and remaking it for every change copied (and allocated) ~0.7 MB per changed job.
  struct Group {
    std::shared_ptr<const DeflatedPart> joined;
    bool stale = true;
  };
  struct Family {
    std::vector<Bucket> buckets;        // a power of two
    std::vector<std::size_t> unsealed;  // buckets with staged text
    std::size_t bytes = 0;
    ChunkPtr header[2];  // text, OpenMetrics
    // Group g joins buckets [g * per_group, (g + 1) * per_group); per_group is a power of two
    // chosen when the buckets are laid out (0: lay the groups out at the next join, after a
    // resize or a gzip level change, when every bucket's piece is fresh).
    std::vector<Group> groups;
    std::size_t per_group = 0;
  };

  static std::size_t index_of(const Family& family, std::size_t hash) {
    return hash & (family.buckets.size() - 1);
  }
  // Sorts one family's pending changes by bucket and key and merges each bucket's run.
  void merge_pending(Family& family, Pending* first, Pending* last);
  void merge(Family& family, std::size_t index, const Pending* first, const Pending* last);
  void seal(Family& family);
  void resize(Family& family, std::size_t count);
  void grow(Family& family, std::size_t count);
  void shrink(Family& family, std::size_t count);
  void fit(Family& family);
  void join(Family& family);
  void join(Family& family, std::size_t group);
  void lay_out_groups(Family& family);
  std::uint32_t intern(std::string_view key);  // the key's id, one more reference to it
  void release(std::uint32_t key);
  const std::string& key_of(const Entry& e) const { return *key_by_id_[e.key]; }
  ChunkPtr make_chunk(std::string text);  // with its own deflate (headers)
  void compress(Bucket& bucket);          // bucket.chunk's text into bucket.fresh

  std::vector<FamilyDesc> descs_;
  std::vector<Family> families_;
  struct KeyHash {  // lets keys_ be searched by string_view without making a string
    using is_transparent = void;
    std::size_t operator()(std::string_view key) const {
      return std::hash<std::string_view>{}(key);
    }
  };
  struct KeyInfo {
    std::uint32_t refs = 0;  // entries using the key
    std::uint32_t id = 0;
  };
  std::unordered_map<std::string, KeyInfo, KeyHash, std::equal_to<>> keys_;
  std::vector<const std::string*> key_by_id_;  // keys_'s key of each id; nullptr when free
  std::vector<std::uint32_t> free_ids_;
  // What keys_ holds, kept as keys come and go: memory_bytes() runs after every build.
  std::size_t keys_bytes_ = 0;
  static std::size_t key_bytes(const std::string& key) {
    return sizeof(key) + key.capacity() + sizeof(KeyInfo) + 16  // + the node's links
           + sizeof(const std::string*);                        // + key_by_id_'s slot
  }
  Deflater deflater_;
  std::vector<Pending> pending_;  // apply()'s, by family; kept for its capacity
  std::size_t series_bytes_ = 0;
  std::uint64_t generation_ = 0;
};

class FamilySet {
 public:
  // Families render in the order they were added; HELP/TYPE once each (once for a family and
  // its continuations), and only with samples.
  // All families are added before the first take_changes()/publish().
  FamilyId add_family(FamilyDesc desc);
  // Replaces the lines `object_key` contributes to `family`; empty `lines` removes them.
  void set(FamilyId family, std::string_view object_key, std::string_view lines);
  // Removes everything `object_key` contributes, in every family.
  void remove_object(std::string_view object_key);

  // The changes since the last call, for a builder on another thread. The following changes
  // go into `next`, emptied: a batch the builder is done with re-uses its buffers.
  ChangeBatch take_changes(ChangeBatch next = {});
  bool has_changes() const { return !changes_.empty(); }
  const std::vector<FamilyDesc>& families() const { return descs_; }

  // Applies the changes to this set's own builder and returns the next snapshot (one thread).
  std::shared_ptr<const Snapshot> publish(int gzip_level);
  std::size_t series_bytes() const { return builder_ ? builder_->series_bytes() : 0; }

 private:
  std::vector<FamilyDesc> descs_;
  ChangeBatch changes_;
  std::unique_ptr<SnapshotBuilder> builder_;  // for publish(); made on first use
};

}  // namespace mx
