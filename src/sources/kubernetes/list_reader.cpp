#include "sources/kubernetes/list_reader.h"

#include <simdjson.h>

#include <utility>

namespace mx::kube {
namespace {

using nlohmann::json;
namespace dom = simdjson::dom;

const FieldFilter kPageMetadata = FieldFilter::of({{"resourceVersion"}, {"continue"}});

// An element of the page's DOM as a JSON value, with only the members `filter` keeps. Numbers
// are typed as nlohmann::json types them, so a listed object reads like a watched one:
// non-negative integers unsigned, negative ones signed, others double.
json build(dom::element element, const FieldFilter& filter) {
  switch (element.type()) {
    case dom::element_type::OBJECT: {
      json out = json::object();
      for (dom::key_value_pair field : dom::object(element)) {
        const FieldFilter* member = filter.keeps_all() ? &filter : filter.find(field.key);
        if (member != nullptr) out[std::string(field.key)] = build(field.value, *member);
      }
      return out;
    }
    case dom::element_type::ARRAY: {
      json out = json::array();
      for (dom::element item : dom::array(element)) out.push_back(build(item, filter));
      return out;
    }
    case dom::element_type::STRING:
      return std::string(std::string_view(element));
    case dom::element_type::INT64: {
      const std::int64_t v = std::int64_t(element);
      if (v >= 0) return static_cast<json::number_unsigned_t>(v);
      return static_cast<json::number_integer_t>(v);
    }
    case dom::element_type::UINT64:
      return static_cast<json::number_unsigned_t>(std::uint64_t(element));
    case dom::element_type::DOUBLE:
      return double(element);
    case dom::element_type::BOOL:
      return bool(element);
    case dom::element_type::NULL_VALUE:
      return nullptr;
  }
  return nullptr;
}

std::string string_at(const json& object, const char* key) {
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

struct ListReader::Parser {
  dom::parser parser;
};

ListReader::ListReader() : parser_(std::make_unique<Parser>()) {}
ListReader::~ListReader() = default;

std::string ListReader::read(std::string& body, const FieldFilter& item_fields,
                             const std::function<void(const json& item)>& on_item, ListPage& page) {
  body.reserve(body.size() + simdjson::SIMDJSON_PADDING);
  // Pages of one list differ a little in size: room for a quarter more, so that a slightly
  // larger page does not make the parser allocate (and page-fault) its buffers again.
  if (body.size() > parser_->parser.capacity()) {
    if (auto error = parser_->parser.allocate(body.size() + body.size() / 4)) {
      return std::string("LIST response could not be parsed: ") + simdjson::error_message(error);
    }
  }
  dom::element doc;
  if (auto error = parser_->parser.parse(body.data(), body.size(), false).get(doc)) {
    return std::string("LIST response is not valid JSON: ") + simdjson::error_message(error);
  }
  dom::object object;
  if (doc.get(object) != simdjson::SUCCESS) return "LIST response is not a JSON object";
  dom::element items;
  if (object["items"].get(items) == simdjson::SUCCESS && !items.is_null()) {
    dom::array array;
    if (items.get(array) != simdjson::SUCCESS) return "LIST response items is not an array";
    // Each item is built, handed over and freed before the next one.
    for (dom::element item : array) on_item(build(item, item_fields));
  }
  dom::element metadata;
  if (object["metadata"].get(metadata) == simdjson::SUCCESS) {
    const json m = build(metadata, kPageMetadata);
    if (m.is_object()) {
      page.resource_version = string_at(m, "resourceVersion");
      page.continue_token = string_at(m, "continue");
    }
  }
  return {};
}

}  // namespace mx::kube
