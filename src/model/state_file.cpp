#include "model/state_file.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/log.h"

namespace mx {
namespace {

using json = nlohmann::json;

json histogram_json(const HistogramData& h) {
  return {{"counts", h.counts}, {"sum", h.sum}};
}

HistogramData histogram_from(const json& j, std::size_t buckets) {
  HistogramData h;
  h.counts = j.at("counts").get<std::vector<std::uint64_t>>();
  h.sum = j.at("sum").get<double>();
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
    if (j.at("version").get<int>() != 1) throw std::runtime_error("unknown version");
    decltype(history.jobs_) counted;
    for (const auto& [uid, e] : j.at("jobs").items()) {
      CountedJob c;
      c.statuses = e.at("statuses").get<std::uint8_t>();
      c.duration_observed = e.at("duration").get<bool>();
      c.queue_observed = e.at("queue").get<bool>();
      c.i6pn_counted = e.at("i6pn").get<bool>();
      c.webhook_counted = e.at("webhook").get<bool>();
      c.task_ids = e.at("tasks").get<std::set<std::string>>();
      if (e.contains("seen_running_at")) c.seen_running_at = e["seen_running_at"].get<double>();
      counted.emplace(uid, std::move(c));
    }
    decltype(history.jobs_total_) totals;
    for (const auto& t : j.at("jobs_total")) {
      totals[{t.at(0).get<std::string>(), t.at(1).get<std::string>(), t.at(2).get<int>()}] =
          t.at(3).get<std::uint64_t>();
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
    for (const auto& i : j.at("i6pn")) i6pn[i.at(0).get<int>()] = i.at(1).get<std::uint64_t>();
    decltype(history.webhook_) webhook;
    for (const auto& w : j.at("webhook")) {
      webhook[{w.at(0).get<std::string>(), w.at(1).get<std::string>()}] = w.at(2).get<double>();
    }
    // Absent in state files written before Events were persisted.
    decltype(events.last_count_) event_counts;
    if (j.contains("event_counts")) {
      event_counts = j["event_counts"].get<decltype(events.last_count_)>();
    }
    decltype(events.by_reason_) by_reason;
    if (j.contains("operator_errors")) {
      for (const auto& e : j["operator_errors"]) {
        by_reason[e.at(0).get<std::string>()] = e.at(1).get<double>();
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
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (out) out << encode(history, events);
    out.flush();
    if (!out) {
      log::error("cannot write state file", {{"path", tmp}});
      return false;
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    log::error("cannot replace state file", {{"path", path}, {"err", ec.message()}});
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
