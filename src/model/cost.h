// Cost of jobs in USD: the hourly burn rate from Modal's rates (else the YAML price table), what
// Modal billed an app (WorkspaceBillingReport, daily and hourly resolution) and the total since a
// job started (billed intervals plus the estimate for the tail not reported yet).
//
// Bounds: the rates are one small map; each billing report replaces the previous one of its
// resolution and holds rows only for the apps of live jobs (the Modal source asks for those).
#pragma once

#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "config/config.h"
#include "model/objects.h"

namespace mx {

class Cost {
 public:
  explicit Cost(PriceConfig prices) : prices_(std::move(prices)) {}
  void set_prices(PriceConfig prices) { prices_ = std::move(prices); }

  // False when the rates are the ones held already.
  bool set_rates(const BillingRates& rates);
  // What a new billing report changed: the apps whose rows differ from the previous report's
  // of its resolution (came, changed or went), or everything when it is the first of it.
  struct BillingChange {
    bool any = false;
    bool first = false;
    std::vector<std::string> apps;
  };
  // A complete report of resolution "d" or "h" replaces the previous one.
  BillingChange set_billing(BillingReport report);

  // USD per hour of one running job.
  double hourly(const JobObject& job) const;
  // Billed USD since `since` ("h" report) and the end of the last reported interval.
  std::optional<std::pair<double, double>> billed_since(const std::string& app_id,
                                                        double since) const;
  // USD from `start` to `end`: billed intervals plus the hourly estimate for the rest.
  double total(const JobObject& job, double start, double end) const;

  std::size_t billing_rows() const;

  // The last complete reports by app id; nullopt until the first of that resolution arrived.
  // A stored row's own app_id is empty: its key says it.
  using Items = std::unordered_map<std::string, std::vector<BillingItem>>;
  const std::optional<Items>& daily() const { return daily_; }
  const std::optional<Items>& hourly_report() const { return hourly_; }

 private:
  PriceConfig prices_;
  std::unordered_map<std::string, NanoUsd> rates_;  // lower-cased keys
  std::optional<Items> daily_;                      // set once the first complete report arrived
  std::optional<Items> hourly_;
};

}  // namespace mx
