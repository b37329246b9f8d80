#include "sources/kubernetes/list_reader.h"

#include <type_traits>
#include <utility>

namespace mx::kube {
namespace {

using nlohmann::json;

const FieldFilter kKeepAll{};

// The events of nlohmann::json::sax_parse, turned into one JSON value per item. A stack holds
// the open containers: the page, its "items" array, containers being built (of an item or of
// the page's metadata) and containers being skipped, which build nothing.
class ListSax {
 public:
  ListSax(const FieldFilter& item_fields, const std::function<void(const json& item)>& on_item)
      : item_fields_(item_fields), on_item_(on_item) {}

  // A value is made only where it is kept. Strings are copied, not moved: the lexer re-uses
  // its buffer for the next token.
  bool null() { return put(nullptr); }
  bool boolean(bool v) { return put(v); }
  bool number_integer(json::number_integer_t v) { return put(v); }
  bool number_unsigned(json::number_unsigned_t v) { return put(v); }
  bool number_float(json::number_float_t v, const std::string& /*text*/) { return put(v); }
  bool string(std::string& v) { return put<const std::string&>(v); }
  bool binary(json::binary_t& v) { return put<const json::binary_t&>(v); }
  bool start_object(std::size_t /*elements*/) { return open(json::value_t::object); }
  bool start_array(std::size_t /*elements*/) { return open(json::value_t::array); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }
  bool key(std::string& name);
  bool parse_error(std::size_t /*position*/, const std::string& /*token*/,
                   const nlohmann::detail::exception& /*ex*/) {
    return false;
  }

  const std::string& error() const { return error_; }
  const json& metadata() const { return metadata_; }

 private:
  enum class Role { page, items, value, skipped };
  struct Frame {
    Role role;
    json* container = nullptr;            // Role::value: the object or array being built
    const FieldFilter* filter = nullptr;  // Role::value: of its members, or of its elements
    bool is_item = false;                 // handed over when it closes
  };
  // Where the next value goes: nowhere (skipped), a place in a container, or the items array.
  struct Slot {
    json* target = nullptr;
    const FieldFilter* filter = &kKeepAll;
    bool is_item = false;
    bool is_items = false;
  };

  Slot next_slot();
  template <class V>
  bool put(V value);
  bool open(json::value_t type);
  bool close();
  void deliver_item() {
    on_item_(item_);
    item_ = json();  // freed before the next item is read
  }
  bool fail(const char* why) {
    error_ = why;
    return false;
  }

  const FieldFilter& item_fields_;
  const std::function<void(const json&)>& on_item_;
  std::vector<Frame> stack_;
  Slot keyed_;  // the slot key() chose for the value that follows it in an object
  json item_;
  json metadata_;
  std::string error_;
};

ListSax::Slot ListSax::next_slot() {
  Frame& top = stack_.back();
  switch (top.role) {
    case Role::page:
      return std::exchange(keyed_, Slot{});
    case Role::items:
      return Slot{&item_, &item_fields_, true, false};  // item_ is null between items
    case Role::value:
      if (top.container->is_array()) {
        top.container->push_back(nullptr);
        return Slot{&top.container->back(), top.filter, false, false};
      }
      return std::exchange(keyed_, Slot{});
    case Role::skipped:
      break;
  }
  return Slot{};
}

bool ListSax::key(std::string& name) {
  const Frame& top = stack_.back();
  keyed_ = Slot{};
  if (top.role == Role::page) {
    if (name == "items") {
      keyed_.is_items = true;
    } else if (name == "metadata") {
      keyed_.target = &metadata_;
    }
  } else if (top.role == Role::value) {
    const FieldFilter* member = top.filter->keeps_all() ? top.filter : top.filter->find(name);
    if (member != nullptr) {
      keyed_.target = &(*top.container)[std::move(name)];
      keyed_.filter = member;
    }
  }
  return true;
}

template <class V>
bool ListSax::put(V value) {
  if (stack_.empty()) return fail("LIST response is not a JSON object");
  const Slot slot = next_slot();
  if (slot.is_items) {
    return std::is_same_v<V, std::nullptr_t> || fail("LIST response items is not an array");
  }
  if (slot.target != nullptr) {
    *slot.target = value;
    if (slot.is_item) deliver_item();  // not an object: its parser says why it is ignored
  }
  return true;
}

bool ListSax::open(json::value_t type) {
  if (stack_.empty()) {
    if (type != json::value_t::object) return fail("LIST response is not a JSON object");
    stack_.push_back({Role::page});
    return true;
  }
  const Slot slot = next_slot();
  if (slot.is_items) {
    if (type != json::value_t::array) return fail("LIST response items is not an array");
    stack_.push_back({Role::items});
  } else if (slot.target != nullptr) {
    *slot.target = json(type);
    stack_.push_back({Role::value, slot.target, slot.filter, slot.is_item});
  } else {
    stack_.push_back({Role::skipped});
  }
  return true;
}

bool ListSax::close() {
  const Frame frame = stack_.back();
  stack_.pop_back();
  if (frame.is_item) deliver_item();
  return true;
}

std::string string_at(const json& object, const char* key) {
  if (!object.is_object()) return {};
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string{};
}

}  // namespace

FieldFilter FieldFilter::of(const std::vector<Path>& paths) {
  FieldFilter root;
  for (const auto& path : paths) {
    FieldFilter* at = &root;
    for (std::string_view name : path) {
      FieldFilter* child = nullptr;
      for (auto& m : at->members) {
        if (m.name == name) child = &m.filter;
      }
      if (child == nullptr) {
        at->members.push_back({std::string(name), {}});
        child = &at->members.back().filter;
      }
      at = child;
    }
  }
  return root;
}

const FieldFilter* FieldFilter::find(std::string_view name) const {
  for (const auto& m : members) {
    if (m.name == name) return &m.filter;
  }
  return nullptr;
}

std::string read_list(std::string_view body, const FieldFilter& item_fields,
                      const std::function<void(const json& item)>& on_item, ListPage& page) {
  ListSax sax(item_fields, on_item);
  if (!json::sax_parse(body, &sax)) {
    return sax.error().empty() ? "LIST response is not valid JSON" : sax.error();
  }
  page.resource_version = string_at(sax.metadata(), "resourceVersion");
  page.continue_token = string_at(sax.metadata(), "continue");
  return {};
}

}  // namespace mx::kube
