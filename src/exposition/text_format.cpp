#include "exposition/text_format.h"

#include <charconv>
#include <cmath>
#include <cstdint>

namespace mx {

void append_value(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "NaN";
    return;
  }
  if (std::isinf(value)) {
    out += value > 0 ? "+Inf" : "-Inf";
    return;
  }
  char buf[32];
  // Whole numbers below 2^53 print as integers; everything else as the shortest round-trip form.
  if (value == std::floor(value) && std::fabs(value) < 9007199254740992.0) {
    auto r = std::to_chars(buf, buf + sizeof buf, static_cast<std::int64_t>(value));
    out.append(buf, r.ptr);
    return;
  }
  auto r = std::to_chars(buf, buf + sizeof buf, value);
  out.append(buf, r.ptr);
}

void append_escaped_label_value(std::string& out, std::string_view value) {
  for (char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
}

namespace {
template <typename Range>
void append_sample_impl(std::string& out, std::string_view name, const Range& labels,
                        double value) {
  out += name;
  if (labels.size() != 0) {
    out += '{';
    bool first = true;
    for (const auto& l : labels) {
      if (!first) out += ',';
      first = false;
      out += l.name;
      out += "=\"";
      append_escaped_label_value(out, l.value);
      out += '"';
    }
    out += '}';
  }
  out += ' ';
  append_value(out, value);
  out += '\n';
}

void append_help_escaped(std::string& out, std::string_view help, ExpositionFormat format) {
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && format == ExpositionFormat::openmetrics) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}
}  // namespace

void append_sample(std::string& out, std::string_view name, std::initializer_list<Label> labels,
                   double value) {
  append_sample_impl(out, name, labels, value);
}

void append_sample(std::string& out, std::string_view name, const std::vector<Label>& labels,
                   double value) {
  append_sample_impl(out, name, labels, value);
}

void append_family_header(std::string& out, ExpositionFormat format, std::string_view name,
                          std::string_view help, MetricType type) {
  std::string_view family = name;
  if (format == ExpositionFormat::openmetrics && type == MetricType::counter && family.size() > 6 &&
      family.substr(family.size() - 6) == "_total") {
    family.remove_suffix(6);
  }
  out += "# HELP ";
  out += family;
  out += ' ';
  append_help_escaped(out, help, format);
  out += "\n# TYPE ";
  out += family;
  switch (type) {
    case MetricType::counter:
      out += " counter\n";
      break;
    case MetricType::gauge:
      out += " gauge\n";
      break;
    case MetricType::histogram:
      out += " histogram\n";
      break;
  }
}

void append_histogram(std::string& out, std::string_view name, const std::vector<Label>& labels,
                      const std::vector<double>& bounds,
                      const std::vector<std::uint64_t>& bucket_counts, double sum) {
  std::vector<Label> with_le = labels;
  with_le.push_back({"le", ""});
  const std::string bucket_name = std::string(name) + "_bucket";
  std::uint64_t cumulative = 0;
  std::string le;
  for (std::size_t i = 0; i <= bounds.size(); ++i) {
    cumulative += i < bucket_counts.size() ? bucket_counts[i] : 0;
    le.clear();
    if (i < bounds.size()) {
      append_value(le, bounds[i]);
    } else {
      le = "+Inf";
    }
    with_le.back().value = le;
    append_sample(out, bucket_name, with_le, static_cast<double>(cumulative));
  }
  append_sample(out, std::string(name) + "_sum", labels, sum);
  append_sample(out, std::string(name) + "_count", labels, static_cast<double>(cumulative));
}

}  // namespace mx
