#include "model/state_file.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/durable_file.h"
#include "common/log.h"

namespace mx {
namespace {

using json = nlohmann::json;

// Typed reads that reject what a conversion would mangle: a negative or fractional count, a float
// out of an integer's range, a string where a number belongs. (A corrupt file starts fresh.)
std::uint64_t count_at(const json& j) {
  if (!j.is_number_unsigned()) throw std::runtime_error("a count is not a non-negative integer");
  return j.get<std::uint64_t>();
}

std::int64_t int_at(const json& j, std::int64_t min, std::int64_t max) {
  if (!j.is_number_integer()) throw std::runtime_error("not an integer");
  if (j.is_number_unsigned() && j.get<std::uint64_t>() > std::uint64_t(INT64_MAX)) {
    throw std::runtime_error("integer out of range");
  }
  const auto v = j.get<std::int64_t>();
  if (v < min || v > max) throw std::runtime_error("integer out of range");
  return v;
}

double number_at(const json& j) {
  if (!j.is_number()) throw std::runtime_error("not a number");
  const double v = j.get<double>();
  if (!std::isfinite(v)) throw std::runtime_error("not a finite number");
  return v;
}

json histogram_json(const HistogramData& h) {
  return {{"counts", h.counts}, {"sum", h.sum}};
}

HistogramData histogram_from(const json& j, std::size_t buckets) {
  HistogramData h;
  for (const auto& c : j.at("counts")) h.counts.push_back(count_at(c));
  h.sum = number_at(j.at("sum"));
  if (h.counts.size() != buckets) throw std::runtime_error("histogram bucket count mismatch");
  return h;
}

}  // namespace

std::string StateFile::encode(const CountHistory& history, const WarningEvents& events) {
  json j;
  j["version"] = 1;
  auto& jobs = j["jobs"] = json::object();
  for (const auto& [uid, c] : history.jobs_) {
    json e = {{"statuses", c.statuses},       {"duration", c.duration_observed},
              {"queue", c.queue_observed},    {"i6pn", c.i6pn_counted},
              {"webhook", c.webhook_counted}, {"tasks", c.task_ids}};
    if (c.seen_running_at) e["seen_running_at"] = *c.seen_running_at;
    jobs[uid] = std::move(e);
  }
  auto& totals = j["jobs_total"] = json::array();
  for (const auto& [k, v] : history.jobs_total_) {
    totals.push_back({std::get<0>(k), std::get<1>(k), std::get<2>(k), v});
  }
  auto& durations = j["duration"] = json::array();
  for (const auto& [k, h] : history.duration_) {
    durations.push_back({k.first, k.second, histogram_json(h)});
  }
  auto& queues = j["queue"] = json::array();
  for (const auto& [k, h] : history.queue_) queues.push_back({k, histogram_json(h)});
  auto& i6pn = j["i6pn"] = json::array();
  for (const auto& [k, v] : history.i6pn_total_) i6pn.push_back({k, v});
  auto& webhook = j["webhook"] = json::array();
  for (const auto& [k, v] : history.webhook_) webhook.push_back({k.first, k.second, v});
  // Warning Events are re-listed after a restart; their counts seen so far keep them from being
  // counted again, and the operator's counts carry on from where they were.
  j["event_counts"] = json(events.last_count_);
  auto& operator_errors = j["operator_errors"] = json::array();
  for (const auto& [reason, v] : events.by_reason_) operator_errors.push_back({reason, v});
  return j.dump();
}

bool StateFile::decode(std::string_view text, CountHistory& history, WarningEvents& events,
                       std::string& error) {
  try {
    const auto j = json::parse(text);
    if (!j.is_object() || int_at(j.at("version"), 0, 1000) != 1)
      throw std::runtime_error("unknown version");
    decltype(history.jobs_) counted;
    for (const auto& [uid, e] : j.at("jobs").items()) {
      CountedJob c;
      c.statuses = static_cast<std::uint8_t>(int_at(e.at("statuses"), 0, 15));
      c.duration_observed = e.at("duration").get<bool>();
      c.queue_observed = e.at("queue").get<bool>();
      c.i6pn_counted = e.at("i6pn").get<bool>();
      c.webhook_counted = e.at("webhook").get<bool>();
      c.task_ids = e.at("tasks").get<std::set<std::string>>();
      if (e.contains("seen_running_at")) c.seen_running_at = number_at(e["seen_running_at"]);
      counted.emplace(uid, std::move(c));
    }
    decltype(history.jobs_total_) totals;
    for (const auto& t : j.at("jobs_total")) {
      const int replicas = static_cast<int>(int_at(t.at(2), INT32_MIN, INT32_MAX));
      totals[{t.at(0).get<std::string>(), t.at(1).get<std::string>(), replicas}] =
          count_at(t.at(3));
    }
    decltype(history.duration_) durations;
    for (const auto& d : j.at("duration")) {
      durations[{d.at(0).get<std::string>(), d.at(1).get<std::string>()}] =
          histogram_from(d.at(2), CountHistory::duration_buckets().size() + 1);
    }
    decltype(history.queue_) queues;
    for (const auto& q : j.at("queue")) {
      queues[q.at(0).get<std::string>()] =
          histogram_from(q.at(1), CountHistory::queue_buckets().size() + 1);
    }
    decltype(history.i6pn_total_) i6pn;
    for (const auto& i : j.at("i6pn")) {
      i6pn[static_cast<int>(int_at(i.at(0), INT32_MIN, INT32_MAX))] = count_at(i.at(1));
    }
    decltype(history.webhook_) webhook;
    for (const auto& w : j.at("webhook")) {
      webhook[{w.at(0).get<std::string>(), w.at(1).get<std::string>()}] = number_at(w.at(2));
    }
    // Absent in state files written before Events were persisted.
    decltype(events.last_count_) event_counts;
    if (j.contains("event_counts")) {
      for (const auto& [uid, count] : j["event_counts"].items()) {
        event_counts[uid] = int_at(count, 0, INT64_MAX);
      }
    }
    decltype(events.by_reason_) by_reason;
    if (j.contains("operator_errors")) {
      for (const auto& e : j["operator_errors"]) {
        by_reason[e.at(0).get<std::string>()] = number_at(e.at(1));
      }
    }
    history.jobs_ = std::move(counted);
    history.jobs_total_ = std::move(totals);
    history.duration_ = std::move(durations);
    history.queue_ = std::move(queues);
    history.i6pn_total_ = std::move(i6pn);
    history.webhook_ = std::move(webhook);
    events.last_count_ = std::move(event_counts);
    events.unconfirmed_.clear();
    for (const auto& [uid, count] : events.last_count_) events.unconfirmed_.insert(uid);
    events.by_reason_ = std::move(by_reason);
  } catch (const std::exception& e) {
    error = e.what();
    return false;
  }
  return true;
}

bool StateFile::save(const std::string& path, const CountHistory& history,
                     const WarningEvents& events) {
  std::string error;
  if (!replace_file_durably(path, encode(history, events), error)) {
    log::error("cannot write state file", {{"path", path}, {"err", error}});
    return false;
  }
  return true;
}

bool StateFile::load(const std::string& path, CountHistory& history, WarningEvents& events) {
  std::ifstream in(path);
  if (!in) {
    log::info("no state file yet; starting fresh", {{"path", path}});
    return false;
  }
  std::stringstream text;
  text << in.rdbuf();
  std::string error;
  if (!decode(text.str(), history, events, error)) {
    log::error("state file is corrupt; starting fresh", {{"path", path}, {"err", error}});
    return false;
  }
  log::info("state restored", {{"path", path}, {"counted_jobs", history.size()}});
  return true;
}

}  // namespace mx
