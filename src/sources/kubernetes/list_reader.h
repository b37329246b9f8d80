// Reading a Kubernetes LIST page item by item (Informer::list). The page is parsed as a stream
// of JSON events: each element of "items" is built as a JSON value of its own, handed over and
// freed before the next one starts, and only the members its parser reads are built at all
// (a FieldFilter). A page of 500 ModalJobs is ~0.75 MB of JSON and was several MB as a whole
// DOM; now at most one item exists at a time, a fraction of its size.
#pragma once

#include <cstddef>
#include <functional>
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

// Reads `body`, calling `on_item` with each element of "items" (filtered by `item_fields`)
// as soon as it is complete. Returns an error text when the body is not a JSON object or its
// items are not an array; items before a syntax error have been handed over by then.
std::string read_list(std::string_view body, const FieldFilter& item_fields,
                      const std::function<void(const nlohmann::json& item)>& on_item,
                      ListPage& page);

}  // namespace mx::kube
