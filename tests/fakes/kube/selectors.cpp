#include "selectors.h"

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace mx::testing::kube {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Splits on commas outside parentheses ("a in (x,y),b" is two requirements).
std::vector<std::string_view> split_top_level(std::string_view text) {
  std::vector<std::string_view> parts;
  int depth = 0;
  std::size_t start = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '(') ++depth;
    if (text[i] == ')') --depth;
    if (text[i] == ',' && depth == 0) {
      parts.push_back(text.substr(start, i - start));
      start = i + 1;
    }
  }
  parts.push_back(text.substr(start));
  return parts;
}

bool valid_key(std::string_view key) {
  if (key.empty() || key.size() > 316) return false;
  return std::all_of(key.begin(), key.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-' ||
           c == '/';
  });
}

bool valid_value(std::string_view value) {
  if (value.size() > 63) return false;
  return std::all_of(value.begin(), value.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
}

[[noreturn]] void fail(std::string_view what, std::string_view term) {
  throw std::invalid_argument(std::string(what) + ": \"" + std::string(term) + "\"");
}

const nlohmann::json* labels_of(const nlohmann::json& object) {
  auto meta = object.find("metadata");
  if (meta == object.end() || !meta->is_object()) return nullptr;
  auto labels = meta->find("labels");
  if (labels == meta->end() || !labels->is_object()) return nullptr;
  return &*labels;
}

std::string field_text(const nlohmann::json& object, const std::vector<std::string>& path) {
  const nlohmann::json* node = &object;
  for (const auto& part : path) {
    if (!node->is_object()) return "";
    auto it = node->find(part);
    if (it == node->end()) return "";
    node = &*it;
  }
  if (node->is_string()) return node->get<std::string>();
  if (node->is_boolean()) return node->get<bool>() ? "true" : "false";
  if (node->is_null()) return "";
  return node->dump();
}

}  // namespace

LabelSelector LabelSelector::parse(std::string_view text) {
  LabelSelector selector;
  if (trim(text).empty()) return selector;
  for (std::string_view raw : split_top_level(text)) {
    std::string_view term = trim(raw);
    if (term.empty()) fail("unable to parse requirement: empty requirement in", text);
    Requirement req;
    if (term.front() == '!') {
      req.key = std::string(trim(term.substr(1)));
      req.op = Op::not_exists;
    } else if (auto open = term.find('('); open != std::string_view::npos) {
      if (term.back() != ')') fail("unable to parse requirement: missing ')'", term);
      std::string_view head = trim(term.substr(0, open));
      auto space = head.find_last_of(" \t");
      if (space == std::string_view::npos) fail("unable to parse requirement", term);
      std::string_view op = trim(head.substr(space + 1));
      req.key = std::string(trim(head.substr(0, space)));
      if (op == "in") {
        req.op = Op::in;
      } else if (op == "notin") {
        req.op = Op::not_in;
      } else {
        fail("unable to parse requirement: unknown operator", term);
      }
      std::string_view inner = term.substr(open + 1, term.size() - open - 2);
      for (std::string_view v : split_top_level(inner)) {
        v = trim(v);
        if (!valid_value(v)) fail("invalid label value", v);
        req.values.emplace_back(v);
      }
    } else if (auto ne = term.find("!="); ne != std::string_view::npos) {
      req.key = std::string(trim(term.substr(0, ne)));
      req.op = Op::not_in;
      req.values.emplace_back(trim(term.substr(ne + 2)));
    } else if (auto eq = term.find('='); eq != std::string_view::npos) {
      std::size_t value_start = eq + 1;
      if (value_start < term.size() && term[value_start] == '=') ++value_start;
      req.key = std::string(trim(term.substr(0, eq)));
      req.op = Op::in;
      req.values.emplace_back(trim(term.substr(value_start)));
    } else {
      req.key = std::string(term);
      req.op = Op::exists;
    }
    if (!valid_key(req.key)) fail("invalid label key", req.key);
    for (const auto& v : req.values) {
      if (!valid_value(v)) fail("invalid label value", v);
    }
    selector.requirements_.push_back(std::move(req));
  }
  return selector;
}

bool LabelSelector::matches(const nlohmann::json& object) const {
  const nlohmann::json* labels = labels_of(object);
  for (const auto& req : requirements_) {
    const nlohmann::json* value = nullptr;
    if (labels != nullptr) {
      auto it = labels->find(req.key);
      if (it != labels->end() && it->is_string()) value = &*it;
    }
    auto in_values = [&] {
      return value != nullptr && std::find(req.values.begin(), req.values.end(),
                                           value->get<std::string>()) != req.values.end();
    };
    switch (req.op) {
      case Op::exists:
        if (value == nullptr) return false;
        break;
      case Op::not_exists:
        if (value != nullptr) return false;
        break;
      case Op::in:
        if (!in_values()) return false;
        break;
      case Op::not_in:
        if (in_values()) return false;
        break;
    }
  }
  return true;
}

FieldSelector FieldSelector::parse(std::string_view text) {
  FieldSelector selector;
  if (trim(text).empty()) return selector;
  for (std::string_view raw : split_top_level(text)) {
    std::string_view term = trim(raw);
    Requirement req;
    std::string_view path;
    if (auto ne = term.find("!="); ne != std::string_view::npos) {
      path = trim(term.substr(0, ne));
      req.equal = false;
      req.value = std::string(trim(term.substr(ne + 2)));
    } else if (auto eq = term.find('='); eq != std::string_view::npos) {
      std::size_t value_start = eq + 1;
      if (value_start < term.size() && term[value_start] == '=') ++value_start;
      path = trim(term.substr(0, eq));
      req.equal = true;
      req.value = std::string(trim(term.substr(value_start)));
    } else {
      fail("invalid field selector: expected path=value", term);
    }
    if (path.empty()) fail("invalid field selector: empty field path", term);
    std::size_t start = 0;
    while (true) {
      auto dot = path.find('.', start);
      std::string_view part = path.substr(start, dot == std::string_view::npos ? dot : dot - start);
      if (part.empty()) fail("invalid field selector: empty path element", term);
      req.path.emplace_back(part);
      if (dot == std::string_view::npos) break;
      start = dot + 1;
    }
    selector.requirements_.push_back(std::move(req));
  }
  return selector;
}

bool FieldSelector::matches(const nlohmann::json& object) const {
  for (const auto& req : requirements_) {
    if ((field_text(object, req.path) == req.value) != req.equal) return false;
  }
  return true;
}

}  // namespace mx::testing::kube
