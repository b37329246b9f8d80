// Label and field selectors as the API server parses them from ?labelSelector= / ?fieldSelector=.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace mx::testing::kube {

// labelSelector: comma-separated requirements, all of which must hold:
// "k", "!k", "k=v", "k==v", "k!=v", "k in (a,b)", "k notin (a,b)".
class LabelSelector {
 public:
  // Throws std::invalid_argument naming the bad requirement.
  static LabelSelector parse(std::string_view text);
  bool empty() const { return requirements_.empty(); }
  bool matches(const nlohmann::json& object) const;

 private:
  enum class Op { exists, not_exists, in, not_in };
  struct Requirement {
    std::string key;
    Op op;
    std::vector<std::string> values;
  };
  std::vector<Requirement> requirements_;
};

// fieldSelector: comma-separated "path=v", "path==v", "path!=v" over dotted object paths.
class FieldSelector {
 public:
  static FieldSelector parse(std::string_view text);  // throws std::invalid_argument
  bool empty() const { return requirements_.empty(); }
  bool matches(const nlohmann::json& object) const;

 private:
  struct Requirement {
    std::vector<std::string> path;
    bool equal;
    std::string value;
  };
  std::vector<Requirement> requirements_;
};

}  // namespace mx::testing::kube
