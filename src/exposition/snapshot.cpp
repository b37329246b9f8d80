#include "exposition/snapshot.h"

namespace mx {

Snapshot::Snapshot(std::string text, std::string openmetrics, int gzip_level,
                   std::uint64_t generation)
    : text_(std::move(text)),
      openmetrics_(std::move(openmetrics)),
      gzip_level_(gzip_level),
      generation_(generation) {}

const DeflatedPart& Snapshot::deflated(ExpositionFormat format) const {
  const int i = format == ExpositionFormat::openmetrics ? 1 : 0;
  std::call_once(deflate_once_[i],
                 [&] { deflated_[i] = deflate_part(body(format), gzip_level_, false); });
  return deflated_[i];
}

FamilyId FamilySet::add_family(FamilyDesc desc) {
  families_.push_back(Family{std::move(desc), {}});
  return families_.size() - 1;
}

void FamilySet::set(FamilyId family, std::string_view object_key, std::string lines) {
  auto& fragments = families_.at(family).fragments;
  auto it = fragments.find(object_key);
  if (it != fragments.end()) {
    bytes_ -= it->second.size();
    if (lines.empty()) {
      fragments.erase(it);
      return;
    }
    bytes_ += lines.size();
    it->second = std::move(lines);
  } else if (!lines.empty()) {
    bytes_ += lines.size();
    fragments.emplace(std::string(object_key), std::move(lines));
  }
}

void FamilySet::remove_object(std::string_view object_key) {
  for (FamilyId f = 0; f < families_.size(); ++f) set(f, object_key, {});
}

const std::string* FamilySet::get(FamilyId family, std::string_view object_key) const {
  const auto& fragments = families_.at(family).fragments;
  auto it = fragments.find(object_key);
  return it == fragments.end() ? nullptr : &it->second;
}

std::shared_ptr<const Snapshot> FamilySet::publish(int gzip_level) {
  std::string text, om;
  const std::size_t reserve = bytes_ + families_.size() * 160;
  text.reserve(reserve);
  om.reserve(reserve);
  for (const auto& f : families_) {
    if (f.fragments.empty()) continue;
    append_family_header(text, ExpositionFormat::text, f.desc.name, f.desc.help, f.desc.type);
    append_family_header(om, ExpositionFormat::openmetrics, f.desc.name, f.desc.help, f.desc.type);
    for (const auto& [key, lines] : f.fragments) {
      text += lines;
      om += lines;
    }
  }
  return std::make_shared<const Snapshot>(std::move(text), std::move(om), gzip_level,
                                          ++generation_);
}

}  // namespace mx
