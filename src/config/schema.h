// The one YAML reader of the exporter's config and of the web config: a document is read against
// a table of keys, each declared once with its dotted path, type, check and one line of doc; the
// value lives in (and takes its default from) the struct member the key is bound to.
//
// Every error has one form, `<source>: key "<dotted.path>" (line N): <what>`, and is thrown as
// ConfigError. Unknown keys, keys that are not strings, duplicate keys and values of the wrong
// type are errors; a key with a null value keeps its default.
#pragma once

#include <yaml-cpp/yaml.h>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/duration.h"
#include "config/config.h"
#include "config/values.h"

namespace mx::schema {

// A value found in the document, with what an error about it needs.
class Value {
 public:
  Value(const YAML::Node& node, std::string key, const std::string& source)
      : node_(node), key_(std::move(key)), source_(source) {}

  const YAML::Node& node() const { return node_; }
  const std::string& key() const { return key_; }

  [[noreturn]] void fail(const std::string& what) const;
  // An element of this value (a list item), reported under the same key.
  Value item(const YAML::Node& node) const { return Value(node, key_, source_); }
  // The scalar's text; anything else (a list, a mapping) is an error "expected <what>".
  std::string text(std::string_view what = "a string") const;
  // Visits a mapping's entries with their keys checked (strings, no duplicates); the child's
  // key is this key + "." + its name.
  void for_each_entry(const std::function<void(const std::string& name, const Value&)>& fn) const;

 private:
  YAML::Node node_;
  std::string key_;
  const std::string& source_;
};

struct Key {
  std::string path;                        // "sources.modal.apps_interval"
  std::string doc;                         // one line
  std::function<void(const Value&)> read;  // parses, checks and stores the value
  std::function<std::string()> show;       // the bound value, spelled as in YAML
};

// A check of a string value: empty when valid, else what is wrong.
using Check = std::function<std::string(const std::string&)>;

Key text(std::string path, std::string& out, std::string doc, Check check = {});
Key boolean(std::string path, bool& out, std::string doc);
// Above 0 unless allow_zero.
Key duration(std::string path, Duration& out, std::string doc, bool allow_zero = false);
Key integer(std::string path, int& out, long long min, long long max, std::string doc);
Key integer(std::string path, std::size_t& out, long long min, long long max, std::string doc);
Key number(std::string path, double& out, double min, double max, std::string doc);
// Non-empty strings, each one of `allowed` when that is not empty, each passing `check`.
Key list(std::string path, std::vector<std::string>& out, std::string doc,
         std::vector<std::string_view> allowed = {}, Check check = {});
// A string that must be one of `names` (which must outlive the key); stores the matching value.
template <typename T>
Key choice(std::string path, T& out, const Names<T>& names, std::string doc);
// A mapping of names the user chooses (e.g. users, headers) to values; `entry` reads each.
Key mapping(std::string path, std::string doc,
            std::function<void(const std::string& name, const Value&)> entry,
            std::function<std::string()> show);
// Any other shape (e.g. a mapping of user-chosen names).
Key custom(std::string path, std::string doc, std::function<void(const Value&)> read,
           std::function<std::string()> show);

// A parsed document. Throws ConfigError for malformed YAML and documents beyond the size and
// nesting limits.
class Document {
 public:
  Document(std::string_view yaml, std::string source);

  // Reads every key present against `keys`. Throws ConfigError.
  void read(const std::vector<Key>& keys) const;

  // An error about a key (for checks across keys): its line, or that of its nearest present
  // parent when the key is absent.
  [[noreturn]] void fail(const std::string& path, const std::string& what) const;

 private:
  void read_mapping(const YAML::Node& node, const std::string& prefix,
                    const std::vector<Key>& keys) const;

  std::string source_;
  YAML::Node root_;
};

// The text of a config file; ConfigError "cannot read <what> <path>" when it cannot be read.
std::string read_file(const std::string& path, std::string_view what);

template <typename T>
Key choice(std::string path, T& out, const Names<T>& names, std::string doc) {
  return custom(
      std::move(path), std::move(doc),
      [&out, &names](const Value& v) {
        std::string error;
        const auto parsed = parse_name(v.text(), names, &error);
        if (!parsed) v.fail(error);
        out = *parsed;
      },
      [&out, &names] { return std::string(name_of(out, names)); });
}

}  // namespace mx::schema
