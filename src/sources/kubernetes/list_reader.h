// Reading a Kubernetes LIST page item by item (Informer::list). simdjson parses and validates the
// page into its compact DOM (SIMD kernels picked at run time for the CPU), and each element of
// "items" is built as a nlohmann::json value of its own, handed over and freed before the next
// one starts, with only the members its parser reads (a FieldFilter). A page of 500 ModalJobs
// is ~0.75 MB of JSON and was several MB as a nlohmann::json DOM; the simdjson DOM of a page is
// about its size, and one item exists at a time, a fraction of its size. Lexing every character
// with nlohmann::json's parser was a fifth of the exporter's start-up CPU at 10k jobs.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace mx::kube {

// The members of a JSON object that a parser reads. A member without members of its own is
// kept whole, whatever its value; an array's filter applies to each of its elements. An empty
// filter keeps everything.
struct FieldFilter {
  struct Member;
  std::vector<Member> members;

  // From paths of member names, e.g. {{"metadata", "uid"}, {"status", "phase"}}.
  using Path = std::vector<std::string_view>;
  static FieldFilter of(const std::vector<Path>& paths);
  bool keeps_all() const { return members.empty(); }
  // The filter of member `name`, or nullptr when the member is dropped.
  const FieldFilter* find(std::string_view name) const;
};

struct FieldFilter::Member {
  std::string name;
  FieldFilter filter;
};

// What a LIST page says besides its items.
struct ListPage {
  std::string resource_version;  // metadata.resourceVersion
  std::string continue_token;    // metadata.continue; empty on the last page
};

// Reads the pages of one LIST; its parser's buffers (sized to the largest page) serve every page.
class ListReader {
 public:
  ListReader();
  ~ListReader();
  ListReader(const ListReader&) = delete;
  ListReader& operator=(const ListReader&) = delete;

  // Reads `body`, calling `on_item` with each element of "items" (filtered by `item_fields`).
  // Returns an error text, and hands over nothing, when the body is not valid JSON, not a JSON
  // object, or its items are not an array. `body` may gain capacity: the parser reads up to 64
  // bytes past its end.
  std::string read(std::string& body, const FieldFilter& item_fields,
                   const std::function<void(const nlohmann::json& item)>& on_item, ListPage& page);

 private:
  struct Parser;
  std::unique_ptr<Parser> parser_;
};

}  // namespace mx::kube
