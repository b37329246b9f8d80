#include "sources/telemetry/exposition_parser.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <system_error>

namespace mx {

const std::string* ExpositionSample::label(std::string_view label_name) const {
  for (const auto& l : labels) {
    if (l.name == label_name) return &l.value;
  }
  return nullptr;
}

ExpositionFormat exposition_format_for_content_type(std::string_view content_type) {
  constexpr std::string_view om = "application/openmetrics-text";
  std::size_t i = 0;
  while (i < content_type.size() && (content_type[i] == ' ' || content_type[i] == '\t')) ++i;
  content_type.remove_prefix(i);
  if (content_type.size() < om.size()) return ExpositionFormat::text;
  for (std::size_t k = 0; k < om.size(); ++k) {
    char c = content_type[k];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != om[k]) return ExpositionFormat::text;
  }
  return ExpositionFormat::openmetrics;
}

namespace {

bool is_blank(char c) {
  return c == ' ' || c == '\t';
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_metric_start(char c) {
  return is_alpha(c) || c == '_' || c == ':';
}
bool is_metric_char(char c) {
  return is_metric_start(c) || is_digit(c);
}
bool is_label_start(char c) {
  return is_alpha(c) || c == '_';
}
bool is_label_char(char c) {
  return is_label_start(c) || is_digit(c);
}

// Quotes a piece of the input for an error reason; bounded so a 1 MB line makes a short message.
std::string quote(std::string_view text) {
  constexpr std::size_t max = 40;
  std::string out = "\"";
  for (std::size_t i = 0; i < text.size() && i < max; ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7f) {
      out += '?';
    } else {
      out += static_cast<char>(c);
    }
  }
  if (text.size() > max) out += "...";
  out += '"';
  return out;
}

std::string describe_char(char c) {
  const unsigned char u = static_cast<unsigned char>(c);
  if (u < 0x20 || u >= 0x7f) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "byte 0x%02x", u);
    return buf;
  }
  return std::string("'") + c + "'";
}

// Go's strconv.ParseFloat as Prometheus uses it: decimal and exponent forms, an optional sign,
// NaN and Inf/Infinity in any case.
std::optional<double> parse_float(std::string_view t, bool* out_of_range) {
  *out_of_range = false;
  bool negative = false;
  if (!t.empty() && (t[0] == '+' || t[0] == '-')) {
    negative = t[0] == '-';
    t.remove_prefix(1);
  }
  if (t.empty() || t[0] == '+' || t[0] == '-') return std::nullopt;
  for (char c : t) {
    // from_chars would accept "nan(payload)"; the formats do not.
    if (!(is_digit(c) || is_alpha(c) || c == '.' || c == '+' || c == '-')) return std::nullopt;
  }
  double v = 0;
  const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (end != t.data() + t.size()) return std::nullopt;
  if (ec == std::errc::result_out_of_range) {
    // Underflow (1e-400) is 0 as in Go; overflow is an error, as Prometheus treats it.
    const auto e = t.find_first_of("eE");
    if (e != std::string_view::npos && e + 1 < t.size() && t[e + 1] == '-') {
      v = 0;
    } else {
      *out_of_range = true;
      return std::nullopt;
    }
  } else if (ec != std::errc{}) {
    return std::nullopt;
  }
  return negative ? -v : v;
}

std::optional<std::int64_t> parse_int64(std::string_view t) {
  if (!t.empty() && t[0] == '+') t.remove_prefix(1);
  if (t.empty() || t[0] == '+') return std::nullopt;
  std::int64_t v = 0;
  const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (ec != std::errc{} || end != t.data() + t.size()) return std::nullopt;
  return v;
}

bool known_type(std::string_view type) {
  // Union of the text format's and OpenMetrics' types: a body in either is accepted.
  static constexpr std::string_view types[] = {"counter",        "gauge",    "histogram",
                                               "summary",        "untyped",  "unknown",
                                               "gaugehistogram", "stateset", "info"};
  for (auto t : types) {
    if (t == type) return true;
  }
  return false;
}

enum class LineKind { blank, comment, sample, eof };

// What the lines of one body share: the sample the kept lines are parsed into, the label names
// of the line being read, and the keep filter. Reused from line to line, so that the strings and
// vectors keep their capacity: a telemetry page's lines all have the same labels.
struct LineScratch {
  ExpositionSample sample;
  std::vector<std::string_view> label_names;
  const std::function<bool(std::string_view)>* keep = nullptr;
};

class LineParser {
 public:
  LineParser(std::string_view line, ExpositionFormat format) : s_(line), format_(format) {}

  // Parses one line. On a sample line fills `scratch.sample`'s name; its labels, value and
  // timestamp only when the keep filter takes the name (`kept`), since the other lines are only
  // checked. Returns the error reason, or an empty string when the line is fine.
  std::string parse(LineScratch& scratch, LineKind& kind, bool& kept) {
    skip_blanks();
    if (at_end()) {
      kind = LineKind::blank;
      return {};
    }
    if (s_[i_] == '#') {
      kind = LineKind::comment;
      return parse_comment(kind);
    }
    kind = LineKind::sample;
    return parse_sample(scratch, kept);
  }

 private:
  bool at_end() const { return i_ >= s_.size(); }
  void skip_blanks() {
    while (i_ < s_.size() && is_blank(s_[i_])) ++i_;
  }
  std::string_view token() {
    const std::size_t start = i_;
    while (i_ < s_.size() && !is_blank(s_[i_])) ++i_;
    return s_.substr(start, i_ - start);
  }

  std::string parse_comment(LineKind& kind) {
    ++i_;  // '#'
    skip_blanks();
    const std::string_view keyword = token();
    if (keyword == "EOF") {
      skip_blanks();
      if (!at_end()) return "unexpected text after # EOF";
      kind = LineKind::eof;
      return {};
    }
    if (keyword != "HELP" && keyword != "TYPE") return {};  // any other comment is ignored
    skip_blanks();
    const std::string_view name = token();
    if (name.empty()) return "missing metric name after # " + std::string(keyword);
    if (auto why = check_metric_name(name); !why.empty()) {
      return why + " in # " + std::string(keyword);
    }
    if (keyword == "TYPE") {
      skip_blanks();
      const std::string_view type = token();
      if (type.empty()) return "missing type in # TYPE " + std::string(name);
      if (!known_type(type)) return "unknown metric type " + quote(type);
      skip_blanks();
      if (!at_end()) return "unexpected text after # TYPE " + std::string(name);
    }
    // The HELP text is free-form (escapes \\ and \n); nothing here needs it.
    return {};
  }

  static std::string check_metric_name(std::string_view name) {
    if (!is_metric_start(name[0])) {
      return "invalid metric name " + quote(name) + ": must start with a letter, '_' or ':'";
    }
    for (char c : name) {
      if (!is_metric_char(c)) {
        return "invalid metric name " + quote(name) + ": " + describe_char(c) + " not allowed";
      }
    }
    return {};
  }

  std::string parse_sample(LineScratch& scratch, bool& kept) {
    ExpositionSample& sample = scratch.sample;
    const std::size_t start = i_;
    if (!is_metric_start(s_[i_])) {
      return "invalid metric name: must start with a letter, '_' or ':', found " +
             describe_char(s_[i_]);
    }
    while (i_ < s_.size() && is_metric_char(s_[i_])) ++i_;
    const std::string_view name = s_.substr(start, i_ - start);
    if (!at_end() && !is_blank(s_[i_]) && s_[i_] != '{') {
      return "invalid metric name " + quote(s_.substr(start, i_ - start + 1)) + ": " +
             describe_char(s_[i_]) + " not allowed";
    }
    kept = !*scratch.keep || (*scratch.keep)(name);
    if (kept) sample.name.assign(name);
    std::size_t label_count = 0;
    skip_blanks();
    if (!at_end() && s_[i_] == '{') {
      if (auto why = parse_labels(scratch, kept, label_count); !why.empty()) return why;
      skip_blanks();
    }
    if (kept) sample.labels.resize(label_count);
    if (at_end()) return "missing value for " + quote(name);
    const std::string_view value_text = token();
    if (value_text[0] == '#') return "missing value for " + quote(name);
    bool out_of_range = false;
    const auto value = parse_float(value_text, &out_of_range);
    if (!value) {
      return (out_of_range ? "value out of range " : "non-numeric value ") + quote(value_text) +
             " for " + quote(name);
    }
    sample.value = *value;
    sample.timestamp_ms.reset();
    skip_blanks();
    if (at_end() || s_[i_] == '#') return {};  // '#': an OpenMetrics exemplar, ignored
    const std::string_view ts_text = token();
    if (auto why = parse_timestamp(ts_text, sample); !why.empty()) return why;
    skip_blanks();
    if (!at_end() && s_[i_] != '#') {
      return "unexpected text " + quote(s_.substr(i_)) + " after the timestamp";
    }
    return {};
  }

  std::string parse_timestamp(std::string_view text, ExpositionSample& sample) {
    if (format_ == ExpositionFormat::text) {
      const auto ms = parse_int64(text);
      if (!ms) return "invalid timestamp " + quote(text) + " (integer milliseconds expected)";
      sample.timestamp_ms = *ms;
      return {};
    }
    bool out_of_range = false;
    const auto seconds = parse_float(text, &out_of_range);
    // Bounds keep the conversion to int64 milliseconds defined.
    if (!seconds || !std::isfinite(*seconds) || std::fabs(*seconds) > 9.0e15) {
      return "invalid timestamp " + quote(text) + " (seconds expected)";
    }
    sample.timestamp_ms = static_cast<std::int64_t>(std::llround(*seconds * 1000.0));
    return {};
  }

  // Checks the label set; when `store`, also writes it into the first `count` labels of the
  // scratch sample, reusing the strings already there.
  std::string parse_labels(LineScratch& scratch, bool store, std::size_t& count) {
    ++i_;  // '{'
    auto& labels = scratch.sample.labels;
    auto& names = scratch.label_names;
    names.clear();
    bool need_separator = false;
    for (;;) {
      skip_blanks();
      if (at_end()) return "unterminated label set (missing '}')";
      if (s_[i_] == '}') {
        ++i_;
        return {};
      }
      if (need_separator) {
        if (s_[i_] != ',') {
          return "expected ',' or '}' after a label value, found " + describe_char(s_[i_]);
        }
        ++i_;
        need_separator = false;
        continue;
      }
      if (s_[i_] == ',') return "unexpected ',' in label set";
      if (!is_label_start(s_[i_])) {
        return "invalid label name: must start with a letter or '_', found " +
               describe_char(s_[i_]);
      }
      const std::size_t name_start = i_;
      while (i_ < s_.size() && is_label_char(s_[i_])) ++i_;
      const std::string_view label_name = s_.substr(name_start, i_ - name_start);
      skip_blanks();
      if (at_end() || s_[i_] != '=') {
        return "expected '=' after label name " + quote(label_name) +
               (at_end() ? std::string() : ", found " + describe_char(s_[i_]));
      }
      ++i_;
      skip_blanks();
      if (at_end() || s_[i_] != '"') {
        return "expected '\"' to open the value of label " + quote(label_name);
      }
      ++i_;
      for (const auto existing : names) {
        if (existing == label_name) return "duplicate label name " + quote(label_name);
      }
      names.push_back(label_name);
      std::string* value = nullptr;
      if (store) {
        if (count == labels.size()) labels.emplace_back();
        auto& label = labels[count++];
        label.name.assign(label_name);
        label.value.clear();
        value = &label.value;
      }
      if (auto why = parse_label_value(value, label_name); !why.empty()) return why;
      need_separator = true;
    }
  }

  // Unescapes the value into `out`, or only checks it when `out` is null.
  std::string parse_label_value(std::string* out, std::string_view label_name) {
    for (;;) {
      // Copy runs without escapes in one go; most values have none.
      const std::size_t run_start = i_;
      while (i_ < s_.size() && s_[i_] != '"' && s_[i_] != '\\') ++i_;
      if (out) out->append(s_.data() + run_start, i_ - run_start);
      if (at_end()) return "unterminated value of label " + quote(label_name);
      if (s_[i_] == '"') {
        ++i_;
        return {};
      }
      ++i_;  // backslash
      if (at_end()) return "unterminated value of label " + quote(label_name);
      char unescaped = 0;
      switch (s_[i_]) {
        case '\\':
          unescaped = '\\';
          break;
        case '"':
          unescaped = '"';
          break;
        case 'n':
          unescaped = '\n';
          break;
        default:
          return "invalid escape sequence \\" + std::string(1, s_[i_]) + " in value of label " +
                 quote(label_name) + " (only \\\\, \\\" and \\n are allowed)";
      }
      if (out) *out += unescaped;
      ++i_;
    }
  }

  std::string_view s_;
  std::size_t i_ = 0;
  ExpositionFormat format_;
};

}  // namespace

ExpositionParseResult parse_exposition(std::string_view body,
                                       const ExpositionParseOptions& options) {
  ExpositionParseResult result;
  auto add_error = [&](std::size_t line, std::string reason) {
    ++result.error_count;
    if (result.errors.size() < options.max_errors) {
      result.errors.push_back({line, std::move(reason)});
    }
  };

  LineScratch scratch;
  scratch.keep = &options.keep;
  std::size_t pos = 0;
  std::size_t line_no = 0;
  bool after_eof = false;
  while (pos < body.size()) {
    const void* nl = std::memchr(body.data() + pos, '\n', body.size() - pos);
    const std::size_t end =
        nl ? static_cast<std::size_t>(static_cast<const char*>(nl) - body.data()) : body.size();
    std::string_view line = body.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);

    if (after_eof) {
      bool blank = true;
      for (char c : line) blank = blank && is_blank(c);
      if (!blank) {
        add_error(line_no, "content after # EOF");
        break;
      }
      continue;
    }

    LineKind kind = LineKind::blank;
    bool kept = false;
    LineParser parser(line, options.format);
    std::string why = parser.parse(scratch, kind, kept);
    if (!why.empty()) {
      add_error(line_no, std::move(why));
      continue;
    }
    if (kind == LineKind::eof) {
      after_eof = true;
    } else if (kind == LineKind::sample) {
      ++result.sample_lines;
      if (kept) result.samples.push_back(scratch.sample);
    }
  }
  return result;
}

}  // namespace mx
