#include "model/cost.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <utility>

namespace mx {
namespace {

constexpr double kNanoPerUsd = 1e9;

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

bool Cost::set_rates(const BillingRates& rates) {
  std::unordered_map<std::string, NanoUsd> next;
  for (const auto& [k, v] : rates.per_hour) next[lower(k)] = v;
  if (next == rates_) return false;
  rates_ = std::move(next);
  return true;
}

Cost::BillingChange Cost::set_billing(BillingReport report) {
  auto& target = report.resolution == "d" ? daily_ : hourly_;
  Items next;
  for (auto& item : report.items) {
    // The key holds the app id once; a row keeps none (30k rows at 10k jobs, each id 25
    // characters on the heap otherwise).
    auto& rows = next[std::exchange(item.app_id, std::string())];
    rows.push_back(std::move(item));
  }
  BillingChange change;
  if (!target) {
    change.any = change.first = true;
  } else {
    for (const auto& [app, rows] : next) {
      auto it = target->find(app);
      if (it == target->end() || it->second != rows) change.apps.push_back(app);
    }
    for (const auto& [app, rows] : *target) {
      if (!next.contains(app)) change.apps.push_back(app);
    }
    change.any = !change.apps.empty();
  }
  if (change.any) target = std::move(next);
  return change;
}

double Cost::hourly(const JobObject& job) const {
  auto rate = [&](const std::string& key, double fallback) {
    auto it = rates_.find(lower(key));
    return it != rates_.end() ? static_cast<double>(it->second) / kNanoPerUsd : fallback;
  };
  double gpu_price = 0;
  if (job.gpu_type != "none" && job.gpu_count > 0) {
    double table = 0;
    for (const auto& [type, price] : prices_.gpu_per_hour) {
      if (lower(type) == lower(job.gpu_type)) table = price;
    }
    gpu_price = rate(job.gpu_type, table) * job.gpu_count;
  }
  const double cpu = rate("cpu", prices_.cpu_core_per_hour) * job.cpu_cores;
  const double mem = rate("memory", prices_.memory_gib_per_hour) * job.memory_gib;
  return (gpu_price + cpu + mem) * job.replicas;
}

std::optional<std::pair<double, double>> Cost::billed_since(const std::string& app_id,
                                                            double since) const {
  if (!hourly_ || app_id.empty()) return std::nullopt;
  NanoUsd sum = 0;
  double reported_until = std::floor(since / 3600.0) * 3600.0;
  auto items = hourly_->find(app_id);
  if (items != hourly_->end()) {
    for (const auto& item : items->second) {
      if (item.interval_start + 3600.0 <= since) continue;
      sum += item.cost;
      reported_until = std::max(reported_until, item.interval_start + 3600.0);
    }
  }
  return std::make_pair(static_cast<double>(sum) / kNanoPerUsd, reported_until);
}

double Cost::total(const JobObject& job, double start, double end) const {
  double total = 0;
  double tail_from = start;
  if (auto billed = billed_since(job.modal_app_id, start)) {
    total = billed->first;
    tail_from = std::max(tail_from, billed->second);
  }
  if (end > tail_from) total += hourly(job) * (end - tail_from) / 3600.0;
  return total;
}

std::size_t Cost::billing_rows() const {
  std::size_t n = 0;
  for (const auto* items : {&daily_, &hourly_}) {
    if (!*items) continue;
    for (const auto& [app, rows] : **items) n += rows.size();
  }
  return n;
}

}  // namespace mx
