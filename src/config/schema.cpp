#include "config/schema.h"

#include <cstdio>
#include <exception>
#include <fstream>
#include <set>
#include <sstream>

namespace mx::schema {
namespace {

constexpr std::size_t kMaxDocumentBytes = 1 << 20;
// Far beyond any config's depth; bounds yaml-cpp's recursion on nested flow collections.
constexpr int kMaxNesting = 64;

// Brackets and braces nest flow collections, on which yaml-cpp recurses. Deeper than any config
// is rejected before parsing (block nesting is bounded by the line structure instead).
bool nesting_within_limit(std::string_view text) {
  int depth = 0;
  for (char c : text) {
    if (c == '[' || c == '{') {
      if (++depth > kMaxNesting) return false;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return true;
}

[[noreturn]] void fail_at(const std::string& source, const YAML::Node& node, const std::string& key,
                          const std::string& what) {
  std::ostringstream out;
  out << source << ": key \"" << (key.empty() ? "<top level>" : key) << "\"";
  if (node.IsDefined() && node.Mark().line >= 0) out << " (line " << node.Mark().line + 1 << ")";
  out << ": " << what;
  throw ConfigError{out.str()};
}

std::string join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

// The entries of a mapping with their keys checked: strings, each once.
void for_each_entry(const YAML::Node& node, const std::string& key, const std::string& source,
                    const std::function<void(const std::string&, const YAML::Node& key,
                                             const YAML::Node& value)>& fn) {
  if (!node.IsMap()) fail_at(source, node, key, "expected a mapping");
  std::set<std::string> seen;
  for (const auto& entry : node) {
    if (!entry.first.IsScalar()) fail_at(source, entry.first, key, "keys must be strings");
    const std::string& name = entry.first.Scalar();
    if (!seen.insert(name).second) fail_at(source, entry.first, join(key, name), "duplicate key");
    fn(name, entry.first, entry.second);
  }
}

// A scalar turned into a value by `parse` (which says what is wrong when it cannot).
template <typename T, typename Parse, typename Show>
Key scalar_key(std::string path, T& out, std::string doc, std::string_view what, Parse parse,
               Show show) {
  return custom(
      std::move(path), std::move(doc),
      [&out, what, parse](const Value& v) {
        std::string error;
        const auto parsed = parse(v.text(what), &error);
        if (!parsed) v.fail(error);
        out = static_cast<T>(*parsed);
      },
      [&out, show] { return show(out); });
}

template <typename Int>
Key integer_key(std::string path, Int& out, long long min, long long max, std::string doc) {
  return scalar_key(
      std::move(path), out, std::move(doc), "an integer",
      [min, max](const std::string& t, std::string* error) {
        return parse_integer(t, min, max, error);
      },
      [](Int v) { return std::to_string(v); });
}

}  // namespace

void Value::fail(const std::string& what) const {
  fail_at(source_, node_, key_, what);
}

std::string Value::text(std::string_view what) const {
  if (!node_.IsScalar()) fail("expected " + std::string(what));
  return node_.Scalar();
}

void Value::for_each_entry(
    const std::function<void(const std::string& name, const Value&)>& fn) const {
  schema::for_each_entry(node_, key_, source_,
                         [&](const std::string& name, const YAML::Node&, const YAML::Node& n) {
                           fn(name, Value(n, join(key_, name), source_));
                         });
}

Key custom(std::string path, std::string doc, std::function<void(const Value&)> read,
           std::function<std::string()> show) {
  return Key{std::move(path), std::move(doc), std::move(read), std::move(show)};
}

Key text(std::string path, std::string& out, std::string doc, Check check) {
  return custom(
      std::move(path), std::move(doc),
      [&out, check](const Value& v) {
        std::string t = v.text();
        if (check) {
          if (const auto error = check(t); !error.empty()) v.fail(error);
        }
        out = std::move(t);
      },
      [&out] { return out; });
}

Key boolean(std::string path, bool& out, std::string doc) {
  return custom(
      std::move(path), std::move(doc),
      [&out](const Value& v) {
        const std::string t = v.node().IsScalar() ? v.node().Scalar() : "";
        if (t != "true" && t != "false") v.fail("expected true or false, got \"" + t + "\"");
        out = t == "true";
      },
      [&out] { return std::string(out ? "true" : "false"); });
}

Key duration(std::string path, Duration& out, std::string doc, bool allow_zero) {
  return scalar_key(
      std::move(path), out, std::move(doc), "a duration",
      [allow_zero](const std::string& t, std::string* error) {
        auto d = parse_duration(t, error);
        if (d && d->count() == 0 && !allow_zero) {
          *error = "duration must be above 0";
          d.reset();
        }
        return d;
      },
      format_duration);
}

Key integer(std::string path, int& out, long long min, long long max, std::string doc) {
  return integer_key(std::move(path), out, min, max, std::move(doc));
}

Key integer(std::string path, std::size_t& out, long long min, long long max, std::string doc) {
  return integer_key(std::move(path), out, min, max, std::move(doc));
}

Key number(std::string path, double& out, double min, double max, std::string doc) {
  return scalar_key(
      std::move(path), out, std::move(doc), "a number",
      [min, max](const std::string& t, std::string* error) {
        return parse_number(t, min, max, error);
      },
      [](double v) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.17g", v);
        return std::string(buf);
      });
}

Key mapping(std::string path, std::string doc,
            std::function<void(const std::string& name, const Value&)> entry,
            std::function<std::string()> show) {
  return custom(
      std::move(path), std::move(doc), [entry](const Value& v) { v.for_each_entry(entry); },
      std::move(show));
}

Key list(std::string path, std::vector<std::string>& out, std::string doc,
         std::vector<std::string_view> allowed, Check check) {
  return custom(
      std::move(path), std::move(doc),
      [&out, allowed, check](const Value& v) {
        if (!v.node().IsSequence()) v.fail("expected a list of strings");
        std::vector<std::string> items;
        for (const auto& node : v.node()) {
          const Value item = v.item(node);
          if (!node.IsScalar() || node.Scalar().empty()) {
            item.fail("expected a non-empty string in the list");
          }
          const std::string& t = node.Scalar();
          bool known = allowed.empty();
          for (auto a : allowed) known = known || a == t;
          if (!known) item.fail("unknown value \"" + t + "\" (known: " + join_names(allowed) + ")");
          if (check) {
            if (const auto error = check(t); !error.empty()) item.fail(error);
          }
          items.push_back(t);
        }
        out = std::move(items);
      },
      [&out] {
        std::string s;
        for (const auto& item : out) s += (s.empty() ? "" : ", ") + item;
        return "[" + s + "]";
      });
}

Document::Document(std::string_view yaml, std::string source) : source_(std::move(source)) {
  if (yaml.size() > kMaxDocumentBytes) throw ConfigError{source_ + ": file too large"};
  if (!nesting_within_limit(yaml)) throw ConfigError{source_ + ": nesting too deep"};
  try {
    root_ = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    throw ConfigError{source_ + ": invalid YAML at line " + std::to_string(e.mark.line + 1) + ": " +
                      e.msg};
  } catch (const std::exception& e) {
    // yaml-cpp reports some malformed documents through other exception types.
    throw ConfigError{source_ + ": invalid document: " + e.what()};
  }
}

void Document::read(const std::vector<Key>& keys) const {
  if (!root_.IsDefined() || root_.IsNull()) return;
  try {
    read_mapping(root_, "", keys);
  } catch (const std::exception& e) {
    // Not expected from reading a parsed tree; kept to the promise of ConfigError only.
    throw ConfigError{source_ + ": invalid document: " + e.what()};
  }
}

void Document::read_mapping(const YAML::Node& node, const std::string& prefix,
                            const std::vector<Key>& keys) const {
  if (node.IsNull()) return;  // an empty section
  const auto visit = [&](const std::string& name, const YAML::Node& key_node, const YAML::Node& n) {
    const std::string path = join(prefix, name);
    for (const auto& key : keys) {
      if (key.path != path) continue;
      if (!n.IsNull()) key.read(Value(n, path, source_));
      return;
    }
    const std::string section = path + ".";
    for (const auto& key : keys) {
      if (key.path.starts_with(section)) return read_mapping(n, path, keys);
    }
    // Unknown: list the names known at this level, in table order.
    std::vector<std::string_view> known;
    const std::size_t skip = prefix.empty() ? 0 : prefix.size() + 1;
    for (const auto& key : keys) {
      if (!prefix.empty() && !key.path.starts_with(prefix + ".")) continue;
      const std::string_view rest = std::string_view(key.path).substr(skip);
      const std::string_view child = rest.substr(0, rest.find('.'));
      bool listed = false;
      for (auto k : known) listed = listed || k == child;
      if (!listed) known.push_back(child);
    }
    fail_at(source_, key_node, path, "unknown key (known keys here: " + join_names(known) + ")");
  };
  schema::for_each_entry(node, prefix, source_, visit);
}

std::string read_file(const std::string& path, std::string_view what) {
  std::ifstream in(path);
  if (!in) throw ConfigError{"cannot read " + std::string(what) + " " + path};
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void Document::fail(const std::string& path, const std::string& what) const {
  YAML::Node node = root_;
  std::size_t begin = 0;
  while (begin <= path.size() && node.IsMap()) {
    const auto dot = path.find('.', begin);
    const std::string name = path.substr(begin, dot == std::string::npos ? dot : dot - begin);
    const YAML::Node& parent = node;
    const YAML::Node child = parent[name];
    if (!child.IsDefined()) break;
    node.reset(child);
    if (dot == std::string::npos) break;
    begin = dot + 1;
  }
  fail_at(source_, node, path, what);
}

}  // namespace mx::schema
