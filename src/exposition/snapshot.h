// The exposition snapshot (docs/design.md, step 4). The model's derivation writes rendered lines
// per (family, object) into a FamilySet; publish() concatenates them into an immutable Snapshot
// that scrapes only copy out. One changed job re-renders only its own fragments.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "exposition/gzip.h"
#include "exposition/text_format.h"

namespace mx {

struct FamilyDesc {
  std::string name;  // sample name for counters includes "_total"
  std::string help;
  MetricType type;
};

class Snapshot {
 public:
  Snapshot(std::string text, std::string openmetrics, int gzip_level, std::uint64_t generation);

  const std::string& body(ExpositionFormat format) const {
    return format == ExpositionFormat::openmetrics ? openmetrics_ : text_;
  }
  // Raw deflate of body(format) ending on a full flush; computed on first use, then shared.
  const DeflatedPart& deflated(ExpositionFormat format) const;
  int gzip_level() const { return gzip_level_; }
  std::uint64_t generation() const { return generation_; }

 private:
  std::string text_;
  std::string openmetrics_;
  int gzip_level_;
  std::uint64_t generation_;
  mutable std::once_flag deflate_once_[2];
  mutable DeflatedPart deflated_[2];
};

using FamilyId = std::size_t;

class FamilySet {
 public:
  // Families render in the order they were added; HELP/TYPE once each, and only with samples.
  FamilyId add_family(FamilyDesc desc);
  // Replaces the lines `object_key` contributes to `family`; empty `lines` removes them.
  void set(FamilyId family, std::string_view object_key, std::string lines);
  // Removes everything `object_key` contributes, in every family.
  void remove_object(std::string_view object_key);
  const std::string* get(FamilyId family, std::string_view object_key) const;

  std::shared_ptr<const Snapshot> publish(int gzip_level);
  std::size_t series_bytes() const { return bytes_; }

 private:
  struct Family {
    FamilyDesc desc;
    std::map<std::string, std::string, std::less<>> fragments;  // sorted: stable output
  };
  std::vector<Family> families_;
  std::size_t bytes_ = 0;
  std::uint64_t generation_ = 0;
};

}  // namespace mx
