#include "promql_scan.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

namespace mx::deploy {

namespace {

bool ident_start(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) != 0 || c == '_' || c == ':';
}
bool ident_char(char c) {
  return ident_start(c) || std::isdigit(static_cast<unsigned char>(c)) != 0;
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// Keywords that are followed by a parenthesised list of label names.
const std::set<std::string> kLabelListKeywords = {"by",       "without",    "on",
                                                  "ignoring", "group_left", "group_right"};
// Binary operators and modifiers spelled as words.
const std::set<std::string> kWordOperators = {"and", "or", "unless", "bool", "offset", "atan2"};
// Aggregation operators: they may be followed by `by (...)` before their `(`, so "followed by
// `(`" does not identify them.
const std::set<std::string> kAggregations = {"sum",     "avg",      "count",        "min",
                                             "max",     "stddev",   "stdvar",       "topk",
                                             "bottomk", "quantile", "count_values", "group"};

class Scanner {
 public:
  explicit Scanner(std::string_view s) : s_(s) {}

  std::set<std::string> run() {
    while (true) {
      skip_space();
      if (i_ >= s_.size()) break;
      const char c = s_[i_];
      if (c == '"' || c == '\'' || c == '`') {
        skip_string();
      } else if (c == '{') {
        matchers();
      } else if (c == '[') {
        skip_until(']');
      } else if (c == '(') {
        ++depth_;
        ++i_;
      } else if (c == ')') {
        if (depth_ == 0) fail("unbalanced ')'");
        --depth_;
        ++i_;
      } else if (c == '$') {
        skip_variable();
      } else if (std::isdigit(static_cast<unsigned char>(c)) != 0 || c == '.') {
        while (i_ < s_.size() && (ident_char(s_[i_]) || s_[i_] == '.')) ++i_;
      } else if (ident_start(c)) {
        identifier();
      } else if (c == ']' || c == '}') {
        fail(std::string("unbalanced '") + c + "'");
      } else {
        ++i_;  // operators, commas, @
      }
    }
    if (depth_ != 0) fail("unbalanced '('");
    return names_;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw ScanError{what + " at offset " + std::to_string(i_) + " in: " + std::string(s_)};
  }

  void skip_space() {
    while (i_ < s_.size()) {
      if (std::isspace(static_cast<unsigned char>(s_[i_])) != 0) {
        ++i_;
      } else if (s_[i_] == '#') {
        while (i_ < s_.size() && s_[i_] != '\n') ++i_;
      } else {
        break;
      }
    }
  }

  std::string read_string() {
    const char quote = s_[i_++];
    std::string out;
    while (i_ < s_.size() && s_[i_] != quote) {
      if (s_[i_] == '\\' && quote != '`' && i_ + 1 < s_.size()) ++i_;
      out += s_[i_++];
    }
    if (i_ >= s_.size()) fail("unterminated string");
    ++i_;
    return out;
  }
  void skip_string() { (void)read_string(); }

  void skip_until(char close) {
    const std::size_t start = i_++;
    while (i_ < s_.size() && s_[i_] != close) {
      if (s_[i_] == '"' || s_[i_] == '\'' || s_[i_] == '`') {
        skip_string();
      } else {
        ++i_;
      }
    }
    if (i_ >= s_.size()) {
      i_ = start;
      fail(std::string("missing '") + close + "'");
    }
    ++i_;
  }

  void skip_variable() {
    ++i_;
    if (i_ < s_.size() && s_[i_] == '{') {
      skip_until('}');
    } else {
      while (i_ < s_.size() && ident_char(s_[i_])) ++i_;
    }
  }

  std::string read_identifier() {
    const std::size_t start = i_;
    while (i_ < s_.size() && ident_char(s_[i_])) ++i_;
    return std::string(s_.substr(start, i_ - start));
  }

  // Label matchers: only `__name__ = "x"` names a metric.
  void matchers() {
    ++i_;
    while (true) {
      skip_space();
      if (i_ >= s_.size()) fail("missing '}'");
      const char c = s_[i_];
      if (c == '}') {
        ++i_;
        return;
      }
      if (c == '"' || c == '\'' || c == '`') {
        skip_string();
        continue;
      }
      if (ident_start(c)) {
        const std::string label = read_identifier();
        skip_space();
        if (label == "__name__" && i_ + 1 < s_.size() && s_[i_] == '=' && s_[i_ + 1] != '=' &&
            s_[i_ + 1] != '~') {
          ++i_;
          skip_space();
          if (i_ < s_.size() && (s_[i_] == '"' || s_[i_] == '\'' || s_[i_] == '`')) {
            names_.insert(read_string());
          }
        }
        continue;
      }
      ++i_;
    }
  }

  void label_list() {
    skip_space();
    if (i_ < s_.size() && s_[i_] == '(') skip_until(')');
  }

  void identifier() {
    const std::string word = read_identifier();
    const std::string lw = lower(word);
    if (kLabelListKeywords.count(lw) != 0) {
      label_list();
      return;
    }
    if (kWordOperators.count(lw) != 0 || kAggregations.count(lw) != 0 || lw == "inf" ||
        lw == "nan") {
      return;
    }
    std::size_t j = i_;
    while (j < s_.size() && std::isspace(static_cast<unsigned char>(s_[j])) != 0) ++j;
    if (j < s_.size() && s_[j] == '(') return;  // a function call
    names_.insert(word);
  }

  std::string_view s_;
  std::size_t i_ = 0;
  int depth_ = 0;
  std::set<std::string> names_;
};

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (std::size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size()) {
    s.replace(pos, from.size(), to);
  }
}

// The first argument of `fn(...)` at the start of `q` (after `fn(`), up to the matching comma
// or parenthesis at depth 0.
std::string first_argument(const std::string& q, std::size_t open) {
  int depth = 0;
  char quote = 0;
  for (std::size_t i = open + 1; i < q.size(); ++i) {
    const char c = q[i];
    if (quote != 0) {
      if (c == '\\') {
        ++i;
      } else if (c == quote) {
        quote = 0;
      }
      continue;
    }
    if (c == '"' || c == '\'' || c == '`') {
      quote = c;
    } else if (c == '(' || c == '{' || c == '[') {
      ++depth;
    } else if (c == ')' || c == '}' || c == ']') {
      if (depth == 0) return q.substr(open + 1, i - open - 1);
      --depth;
    } else if (c == ',' && depth == 0) {
      return q.substr(open + 1, i - open - 1);
    }
  }
  throw ScanError{"unbalanced parentheses in Grafana query: " + q};
}

std::string trim(std::string s) {
  const auto not_space = [](unsigned char c) { return std::isspace(c) == 0; };
  s.erase(s.begin(), std::find_if(s.begin(), s.end(), not_space));
  s.erase(std::find_if(s.rbegin(), s.rend(), not_space).base(), s.end());
  return s;
}

// A Grafana Prometheus query variable: label_values(sel, label), label_values(label),
// label_names(), metrics(regex), query_result(expr), or plain PromQL.
std::optional<std::string> variable_promql(const std::string& raw) {
  const std::string q = trim(raw);
  for (const char* fn : {"label_values", "query_result"}) {
    const std::string prefix = std::string(fn) + "(";
    if (q.rfind(prefix, 0) == 0) {
      const std::string arg = trim(first_argument(q, prefix.size() - 1));
      // label_values(label) has no selector: nothing to check.
      if (std::string(fn) == "label_values" && q.find(',') == std::string::npos) return {};
      return arg;
    }
  }
  if (q.rfind("label_names(", 0) == 0 || q.rfind("metrics(", 0) == 0 || q.empty()) return {};
  return q;
}

void collect_panels(const nlohmann::json& panels, std::vector<NamedExpr>& out) {
  if (!panels.is_array()) return;
  for (const auto& p : panels) {
    const std::string title = p.value("title", std::string("(untitled)"));
    if (p.contains("targets") && p["targets"].is_array()) {
      for (const auto& t : p["targets"]) {
        if (!t.contains("expr")) continue;
        if (!t["expr"].is_string()) throw ScanError{"panel '" + title + "': expr is not a string"};
        out.push_back({"panel '" + title + "' " + t.value("refId", std::string("?")),
                       substitute_grafana_variables(t["expr"].get<std::string>())});
      }
    }
    if (p.contains("panels")) collect_panels(p["panels"], out);
  }
}

}  // namespace

std::set<std::string> promql_metric_names(std::string_view expr) {
  return Scanner(expr).run();
}

std::string substitute_grafana_variables(std::string_view expr) {
  std::string s(expr);
  for (const char* v : {"__rate_interval", "__interval", "__range"}) {
    replace_all(s, std::string("${") + v + "}", "5m");
  }
  replace_all(s, "$__range_s", "300");
  replace_all(s, "${__range_s}", "300");
  for (const char* v : {"$__rate_interval", "$__interval", "$__range"}) replace_all(s, v, "5m");
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '$') {
      out += s[i];
      continue;
    }
    std::size_t j = i + 1;
    if (j < s.size() && s[j] == '{') {
      const std::size_t close = s.find('}', j);
      if (close == std::string::npos) throw ScanError{"unterminated ${ in: " + s};
      j = close + 1;
    } else {
      while (j < s.size() && ident_char(s[j])) ++j;
    }
    if (j == i + 1) {
      out += '$';
      continue;
    }
    out += ".*";
    i = j - 1;
  }
  return out;
}

std::vector<NamedExpr> rule_file_exprs(const std::string& yaml_text) {
  std::vector<NamedExpr> out;
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw ScanError{std::string("rule file is not YAML: ") + e.what()};
  }
  if (!root["groups"] || !root["groups"].IsSequence()) throw ScanError{"rule file has no groups"};
  for (const auto& g : root["groups"]) {
    if (!g["rules"] || !g["rules"].IsSequence()) continue;
    for (const auto& r : g["rules"]) {
      const std::string name = r["alert"]    ? "alert " + r["alert"].as<std::string>()
                               : r["record"] ? "record " + r["record"].as<std::string>()
                                             : std::string("rule ?");
      if (!r["expr"]) throw ScanError{name + " has no expr"};
      out.push_back({name, r["expr"].as<std::string>()});
    }
  }
  return out;
}

std::vector<NamedExpr> dashboard_exprs(const std::string& json_text) {
  nlohmann::json d;
  try {
    d = nlohmann::json::parse(json_text);
  } catch (const nlohmann::json::exception& e) {
    throw ScanError{std::string("dashboard is not JSON: ") + e.what()};
  }
  std::vector<NamedExpr> out;
  collect_panels(d.value("panels", nlohmann::json::array()), out);
  if (d.contains("templating") && d["templating"].contains("list")) {
    for (const auto& v : d["templating"]["list"]) {
      if (v.value("type", std::string()) != "query") continue;
      std::string q;
      if (v.contains("query") && v["query"].is_string()) {
        q = v["query"].get<std::string>();
      } else if (v.contains("query") && v["query"].is_object()) {
        q = v["query"].value("query", std::string());
      } else {
        q = v.value("definition", std::string());
      }
      if (auto promql = variable_promql(q)) {
        out.push_back({"variable $" + v.value("name", std::string("?")),
                       substitute_grafana_variables(*promql)});
      }
    }
  }
  return out;
}

std::set<std::string> exposition_names(const std::string& text) {
  std::set<std::string> names;
  std::istringstream in(text);
  std::string line;
  bool any_sample = false;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    if (line[0] == '#') {
      std::istringstream words(line);
      std::string hash, kind, name, type;
      words >> hash >> kind >> name >> type;
      if (kind == "TYPE" && type == "histogram") {
        for (const char* suffix : {"_bucket", "_sum", "_count"}) names.insert(name + suffix);
      } else if (kind == "TYPE" && type == "summary") {
        names.insert(name);
        for (const char* suffix : {"_sum", "_count"}) names.insert(name + suffix);
      }
      continue;
    }
    std::size_t end = 0;
    while (end < line.size() && ident_char(line[end])) ++end;
    if (end == 0) throw ScanError{"not a sample line in the metrics dump: " + line};
    names.insert(line.substr(0, end));
    any_sample = true;
  }
  if (!any_sample) throw ScanError{"the metrics dump holds no sample"};
  return names;
}

}  // namespace mx::deploy
