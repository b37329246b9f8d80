#include "sources/kubernetes/parse.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cmath>
#include <limits>

namespace mx::kube {
namespace {

using nlohmann::json;

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// Field access that treats a missing key, a null and a value of the wrong type alike.
const json* member(const json* j, std::string_view key) {
  if (j == nullptr || !j->is_object()) return nullptr;
  auto it = j->find(key);
  if (it == j->end() || it->is_null()) return nullptr;
  return &*it;
}

const json* object_member(const json* j, std::string_view key) {
  const json* m = member(j, key);
  return m != nullptr && m->is_object() ? m : nullptr;
}

std::optional<std::string> string_member(const json* j, std::string_view key) {
  const json* m = member(j, key);
  if (m == nullptr || !m->is_string()) return std::nullopt;
  return m->get<std::string>();
}

std::string string_or_empty(const json* j, std::string_view key) {
  return string_member(j, key).value_or(std::string{});
}

// Integers; a float with an integral value (2.0) counts too, anything else is "missing".
std::optional<std::int64_t> int_member(const json* j, std::string_view key) {
  const json* m = member(j, key);
  if (m == nullptr) return std::nullopt;
  if (m->is_number_integer()) {
    if (m->is_number_unsigned()) {
      auto u = m->get<std::uint64_t>();
      if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        return std::nullopt;
      }
      return static_cast<std::int64_t>(u);
    }
    return m->get<std::int64_t>();
  }
  if (m->is_number_float()) {
    double d = m->get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15) {
      return static_cast<std::int64_t>(d);
    }
  }
  return std::nullopt;
}

std::optional<bool> bool_member(const json* j, std::string_view key) {
  const json* m = member(j, key);
  if (m == nullptr || !m->is_boolean()) return std::nullopt;
  return m->get<bool>();
}

std::optional<double> timestamp_member(const json* j, std::string_view key) {
  auto s = string_member(j, key);
  if (!s) return std::nullopt;
  return parse_timestamp(*s);
}

std::optional<std::int64_t> parse_int(std::string_view s) {
  s = trim(s);
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  std::int64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || ptr != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

// A replica count: a positive int, else the default of 1.
int sane_replicas(std::optional<std::int64_t> v) {
  if (!v || *v < 1 || *v > std::numeric_limits<int>::max()) return 1;
  return static_cast<int>(*v);
}

// cpu / memory may be a quantity string or (int-or-string in Kubernetes) a plain number.
std::optional<double> quantity_member(const json* j, std::string_view key) {
  const json* m = member(j, key);
  if (m == nullptr) return std::nullopt;
  if (m->is_string()) return parse_quantity(m->get<std::string>());
  if (m->is_number()) {
    double d = m->get<double>();
    if (std::isfinite(d) && d >= 0) return d;
  }
  return std::nullopt;
}

constexpr double kBytesPerGiB = 1024.0 * 1024.0 * 1024.0;
constexpr double kDefaultCpuCores = 1.0;   // CRD default "1.0"
constexpr double kDefaultMemoryGiB = 0.5;  // CRD default "512Mi"

struct Metadata {
  std::string uid;
  std::string namespace_name;
  std::string name;
  const json* annotations = nullptr;
  std::optional<double> creation;
};

// Reads metadata and fills `error` when the object cannot be keyed.
template <typename T>
std::optional<Metadata> read_metadata(const json& object, std::string_view kind,
                                      ParseOutcome<T>& out) {
  if (!object.is_object()) {
    out.error = std::string(kind) + " is not a JSON object";
    return std::nullopt;
  }
  const json* meta = object_member(&object, "metadata");
  Metadata m;
  m.namespace_name = string_or_empty(meta, "namespace");
  m.name = string_or_empty(meta, "name");
  m.uid = string_or_empty(meta, "uid");
  m.annotations = object_member(meta, "annotations");
  m.creation = timestamp_member(meta, "creationTimestamp");
  if (m.uid.empty()) {
    out.error = std::string(kind) + " " + (m.namespace_name.empty() ? "" : m.namespace_name + "/") +
                (m.name.empty() ? "<unnamed>" : m.name) + " has no metadata.uid";
    return std::nullopt;
  }
  out.uid = m.uid;
  return m;
}

bool annotation_true(const json* annotations, std::string_view key) {
  auto v = string_member(annotations, key);
  return v && iequals(trim(*v), "true");
}

}  // namespace

// --- scalars ---------------------------------------------------------------------------------

std::optional<double> parse_timestamp(std::string_view text) {
  const std::string_view s = trim(text);
  std::size_t i = 0;
  auto digits = [&](int n, int& out) {
    out = 0;
    for (int k = 0; k < n; ++k, ++i) {
      if (i >= s.size() || !std::isdigit(static_cast<unsigned char>(s[i]))) return false;
      out = out * 10 + (s[i] - '0');
    }
    return true;
  };
  auto take = [&](char c) {
    if (i < s.size() && s[i] == c) {
      ++i;
      return true;
    }
    return false;
  };

  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  double fraction = 0;
  int offset_seconds = 0;
  if (!digits(4, year) || !take('-') || !digits(2, month) || !take('-') || !digits(2, day)) {
    return std::nullopt;
  }
  if (i < s.size()) {
    if (s[i] != 'T' && s[i] != 't' && s[i] != ' ') return std::nullopt;
    ++i;
    if (!digits(2, hour) || !take(':') || !digits(2, minute)) return std::nullopt;
    if (take(':') && !digits(2, second)) return std::nullopt;
    if (i < s.size() && (s[i] == '.' || s[i] == ',')) {
      ++i;
      double scale = 0.1;
      std::size_t start = i;
      while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
        fraction += (s[i] - '0') * scale;
        scale /= 10;
        ++i;
      }
      if (i == start) return std::nullopt;
    }
    if (i < s.size()) {
      if (s[i] == 'Z' || s[i] == 'z') {
        ++i;
      } else if (s[i] == '+' || s[i] == '-') {
        const int sign = s[i] == '-' ? -1 : 1;
        ++i;
        int oh = 0, om = 0;
        if (!digits(2, oh)) return std::nullopt;
        if (i < s.size()) {
          take(':');
          if (!digits(2, om)) return std::nullopt;
        }
        if (oh > 23 || om > 59) return std::nullopt;
        offset_seconds = sign * (oh * 3600 + om * 60);
      } else {
        return std::nullopt;
      }
    }
    if (i != s.size()) return std::nullopt;
  }
  if (hour > 24 || minute > 59 || second > 60) return std::nullopt;
  if (hour == 24 && (minute != 0 || second != 0 || fraction != 0)) return std::nullopt;

  using namespace std::chrono;
  const year_month_day ymd{std::chrono::year{year},
                           std::chrono::month{static_cast<unsigned>(month)},
                           std::chrono::day{static_cast<unsigned>(day)}};
  if (!ymd.ok()) return std::nullopt;
  const auto days = sys_days{ymd}.time_since_epoch().count();
  const double seconds =
      static_cast<double>(days) * 86400.0 + hour * 3600.0 + minute * 60.0 + second - offset_seconds;
  return seconds + fraction;
}

std::optional<double> parse_quantity(std::string_view text) {
  std::string_view s = trim(text);
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  std::size_t i = 0;
  std::size_t digit_count = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++digit_count;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++digit_count;
  }
  if (digit_count == 0) return std::nullopt;
  // "1." and ".5" are valid quantities; from_chars wants a digit on both sides of the point.
  std::string number(s.substr(0, i));
  if (number.front() == '.') number.insert(number.begin(), '0');
  if (number.back() == '.') number.push_back('0');
  double value = 0;
  auto [ptr, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
  if (ec != std::errc{} || ptr != number.data() + number.size()) return std::nullopt;

  const std::string_view suffix = s.substr(i);
  double multiplier = 1;
  if (suffix.size() >= 2 && (suffix[0] == 'e' || suffix[0] == 'E') &&
      (std::isdigit(static_cast<unsigned char>(suffix[1])) || suffix[1] == '+' ||
       suffix[1] == '-')) {
    auto exponent = parse_int(suffix.substr(1));
    if (!exponent || *exponent > 300 || *exponent < -300) return std::nullopt;
    multiplier = std::pow(10.0, static_cast<double>(*exponent));
  } else {
    static constexpr std::pair<std::string_view, double> kSuffixes[] = {
        {"", 1},
        {"n", 1e-9},
        {"u", 1e-6},
        {"m", 1e-3},
        {"k", 1e3},
        {"M", 1e6},
        {"G", 1e9},
        {"T", 1e12},
        {"P", 1e15},
        {"E", 1e18},
        {"Ki", 1024.0},
        {"Mi", 1024.0 * 1024},
        {"Gi", 1024.0 * 1024 * 1024},
        {"Ti", 1024.0 * 1024 * 1024 * 1024},
        {"Pi", 1024.0 * 1024 * 1024 * 1024 * 1024},
        {"Ei", 1024.0 * 1024 * 1024 * 1024 * 1024 * 1024},
    };
    auto it = std::find_if(std::begin(kSuffixes), std::end(kSuffixes),
                           [&](const auto& p) { return p.first == suffix; });
    if (it == std::end(kSuffixes)) return std::nullopt;
    multiplier = it->second;
  }
  const double result = value * multiplier;
  if (!std::isfinite(result)) return std::nullopt;
  return result;
}

std::optional<double> parse_cpu_cores(std::string_view text) {
  return parse_quantity(text);
}

std::optional<double> parse_memory_gib(std::string_view text) {
  auto bytes = parse_quantity(text);
  if (!bytes) return std::nullopt;
  return *bytes / kBytesPerGiB;
}

GpuSpec parse_gpu(std::string_view spec) {
  spec = trim(spec);
  GpuSpec out;
  const auto colon = spec.find(':');
  const std::string_view type = trim(spec.substr(0, colon));
  if (type.empty() || iequals(type, "none")) return out;
  out.type = std::string(type);
  out.count = 1;
  if (colon != std::string_view::npos) {
    // A count that is not a positive integer still names a GPU: one of it.
    auto count = parse_int(spec.substr(colon + 1));
    if (count && *count >= 1 && *count <= 1024) out.count = static_cast<int>(*count);
  }
  return out;
}

// --- objects ---------------------------------------------------------------------------------
// Each parser starts alike (read_metadata, then the status object) and ends alike (hand the
// object over); what lies between is what differs, so the shared frame stays written out.

namespace {

// What both kinds of job take from their metadata, and their GPU request (spec of a ModalJob, an
// annotation of an offloaded Pod).
JobObject job_identity(const Metadata& meta, const char* kind,
                       const std::optional<std::string>& gpu) {
  JobObject job;
  job.uid = meta.uid;
  job.kind = kind;
  job.namespace_name = meta.namespace_name;
  job.name = meta.name;
  if (gpu) {
    auto g = parse_gpu(*gpu);
    job.gpu_type = g.type;
    job.gpu_count = g.count;
  }
  return job;
}

}  // namespace

ParseOutcome<JobObject> parse_modal_job(const json& object) {
  ParseOutcome<JobObject> out;
  auto meta = read_metadata(object, "ModalJob", out);
  if (!meta) return out;
  const json* spec = object_member(&object, "spec");
  const json* status = object_member(&object, "status");

  JobObject job = job_identity(*meta, "ModalJob", string_member(spec, "gpu"));
  job.replicas = sane_replicas(int_member(spec, "replicas"));
  job.i6pn = bool_member(spec, "enable_i6pn").value_or(false);
  job.cpu_cores = quantity_member(spec, "cpu").value_or(kDefaultCpuCores);
  job.memory_gib = [&] {
    auto q = quantity_member(spec, "memory");
    return q ? *q / kBytesPerGiB : kDefaultMemoryGiB;
  }();
  job.phase = string_or_empty(status, "phase");
  job.created_at = timestamp_member(status, "created_at");
  if (!job.created_at) job.created_at = meta->creation;
  job.started_at = timestamp_member(status, "started_at");
  job.finished_at = timestamp_member(status, "finished_at");
  job.modal_app_id = string_or_empty(status, "modal_app_id");
  job.modal_function_id = string_or_empty(status, "modal_function_id");
  job.telemetry_url = string_or_empty(meta->annotations, "modal-operator.io/telemetry-url");
  out.object = std::move(job);
  return out;
}

ParseOutcome<JobObject> parse_offloaded_pod(const json& object) {
  ParseOutcome<JobObject> out;
  auto meta = read_metadata(object, "Pod", out);
  if (!meta) return out;
  const json* ann = meta->annotations;
  if (!annotation_true(ann, "modal-operator.io/use-modal") &&
      !annotation_true(ann, "modal-operator.io/offload")) {
    return out;  // an ordinary Pod: not a job
  }
  const json* status = object_member(&object, "status");

  JobObject job = job_identity(*meta, "Pod", string_member(ann, "modal-operator.io/gpu"));
  if (auto r = string_member(ann, "modal-operator.io/replicas")) {
    job.replicas = sane_replicas(parse_int(*r));
  }
  job.i6pn = annotation_true(ann, "modal-operator.io/enable-i6pn");
  if (auto cpu = string_member(ann, "modal-operator.io/cpu")) {
    job.cpu_cores = parse_cpu_cores(*cpu).value_or(kDefaultCpuCores);
  }
  if (auto mem = string_member(ann, "modal-operator.io/memory")) {
    job.memory_gib = parse_memory_gib(*mem).value_or(kDefaultMemoryGiB);
  }
  job.webhook_mutated = annotation_true(ann, "modal-operator.io/mutated");
  job.telemetry_url = string_or_empty(ann, "modal-operator.io/telemetry-url");
  job.phase = string_or_empty(status, "phase");
  job.created_at = meta->creation;
  job.started_at = timestamp_member(status, "startTime");
  if (const json* statuses = member(status, "containerStatuses");
      statuses != nullptr && statuses->is_array()) {
    for (const json& cs : *statuses) {
      const json* terminated = object_member(object_member(&cs, "state"), "terminated");
      auto finished = timestamp_member(terminated, "finishedAt");
      if (finished && (!job.finished_at || *finished > *job.finished_at)) {
        job.finished_at = finished;
      }
    }
  }
  out.object = std::move(job);
  return out;
}

ParseOutcome<EndpointObject> parse_modal_endpoint(const json& object) {
  ParseOutcome<EndpointObject> out;
  auto meta = read_metadata(object, "ModalEndpoint", out);
  if (!meta) return out;
  const json* status = object_member(&object, "status");
  EndpointObject e;
  e.uid = meta->uid;
  e.namespace_name = meta->namespace_name;
  e.name = meta->name;
  e.modal_app_id = string_or_empty(status, "modal_app_id");
  e.ready_replicas = int_member(status, "ready_replicas");
  out.object = std::move(e);
  return out;
}

ParseOutcome<WarningEvent> parse_warning_event(const json& object) {
  ParseOutcome<WarningEvent> out;
  auto meta = read_metadata(object, "Event", out);
  if (!meta) return out;
  // The LIST/WATCH asks for type=Warning; check again in case a server ignores the selector.
  if (auto type = string_member(&object, "type"); type && *type != "Warning") return out;
  const json* involved = object_member(&object, "involvedObject");
  const std::string api_version = string_or_empty(involved, "apiVersion");
  const std::string kind = string_or_empty(involved, "kind");
  if (api_version.rfind("modal-operator.io/", 0) != 0 && kind != "Pod") return out;

  WarningEvent e;
  e.uid = meta->uid;
  e.namespace_name = meta->namespace_name;
  e.reason = string_or_empty(&object, "reason");
  if (e.reason.empty()) e.reason = "Unknown";
  e.involved_uid = string_or_empty(involved, "uid");
  if (kind == "Pod") {
    e.about_pod = true;
    e.pod_name = string_or_empty(involved, "name");
    if (auto ns = string_member(involved, "namespace"); ns && !ns->empty()) e.namespace_name = *ns;
  }
  std::optional<std::int64_t> count = int_member(object_member(&object, "series"), "count");
  if (!count) count = int_member(&object, "count");
  e.count = count && *count >= 1 ? *count : 1;
  out.object = std::move(e);
  return out;
}

std::optional<std::int64_t> container_restart_count(const json& pod, std::string_view container) {
  const json* statuses = member(object_member(&pod, "status"), "containerStatuses");
  if (statuses == nullptr || !statuses->is_array()) return std::nullopt;
  for (const json& cs : *statuses) {
    auto name = string_member(&cs, "name");
    if (name && *name == container) {
      auto count = int_member(&cs, "restartCount");
      if (count && *count >= 0) return count;
      return std::nullopt;
    }
  }
  return std::nullopt;
}

namespace {
// `own` and what read_metadata and the informer read of every object.
FieldFilter with_metadata(std::initializer_list<FieldFilter::Path> own) {
  std::vector<FieldFilter::Path> paths = {{"metadata", "namespace"},
                                          {"metadata", "name"},
                                          {"metadata", "uid"},
                                          {"metadata", "creationTimestamp"},
                                          {"metadata", "resourceVersion"}};
  paths.insert(paths.end(), own.begin(), own.end());
  return FieldFilter::of(paths);
}
}  // namespace

const FieldFilter& modal_job_fields() {
  static const FieldFilter fields = with_metadata({
      {"metadata", "annotations", "modal-operator.io/telemetry-url"},
      {"spec", "gpu"},
      {"spec", "replicas"},
      {"spec", "enable_i6pn"},
      {"spec", "cpu"},
      {"spec", "memory"},
      {"status", "phase"},
      {"status", "created_at"},
      {"status", "started_at"},
      {"status", "finished_at"},
      {"status", "modal_app_id"},
      {"status", "modal_function_id"},
  });
  return fields;
}

const FieldFilter& offloaded_pod_fields() {
  static const FieldFilter fields = with_metadata({
      {"metadata", "annotations", "modal-operator.io/use-modal"},
      {"metadata", "annotations", "modal-operator.io/offload"},
      {"metadata", "annotations", "modal-operator.io/gpu"},
      {"metadata", "annotations", "modal-operator.io/replicas"},
      {"metadata", "annotations", "modal-operator.io/enable-i6pn"},
      {"metadata", "annotations", "modal-operator.io/cpu"},
      {"metadata", "annotations", "modal-operator.io/memory"},
      {"metadata", "annotations", "modal-operator.io/mutated"},
      {"metadata", "annotations", "modal-operator.io/telemetry-url"},
      {"status", "phase"},
      {"status", "startTime"},
      {"status", "containerStatuses", "state", "terminated", "finishedAt"},
  });
  return fields;
}

const FieldFilter& modal_endpoint_fields() {
  static const FieldFilter fields = with_metadata({
      {"status", "modal_app_id"},
      {"status", "ready_replicas"},
  });
  return fields;
}

const FieldFilter& warning_event_fields() {
  static const FieldFilter fields = with_metadata({
      {"type"},
      {"involvedObject", "apiVersion"},
      {"involvedObject", "kind"},
      {"involvedObject", "uid"},
      {"involvedObject", "name"},
      {"involvedObject", "namespace"},
      {"reason"},
      {"series", "count"},
      {"count"},
  });
  return fields;
}

std::string resource_version(const json& object) {
  return string_or_empty(object_member(&object, "metadata"), "resourceVersion");
}

}  // namespace mx::kube
