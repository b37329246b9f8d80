// End to end, sharded: two shards (--shard 0 and 1 of --total-shards 2) and one unsharded
// exporter watch the same simulator; one real Prometheus scrapes the shards as job "shards" and
// the unsharded exporter as job "unsharded". With the world paused (so that every exporter has
// caught up with the same state), it shows:
//  - for every modal_* family the unsharded exporter serves, `sum without (instance)` over the
//    shards equals the unsharded series, label set by label set. That covers every metric of
//    the seed queries (monitoring/seed-queries.yaml), which aggregate these series further.
//    The comparison is on the series rather than on the seed queries' rate()s: rate()
//    extrapolates from each target's own scrape times, so the rates of two equal counters
//    scraped at different moments differ slightly; equal series make equal aggregates;
//  - no per-object series (a job's, with job_name; an endpoint's, with endpoint) comes from
//    both shards;
//  - the shards split the jobs: each owns some, together they own what the unsharded exporter
//    holds, each counts the others' as foreign, and each counts the Warning Events about its
//    own jobs (the simulator writes the involved object's UID, as Kubernetes does).
// What legitimately differs, as documented (docs/design.md, "Sharding"; README, "Sharding"):
// modal_app_cost_usd is rendered by every shard that knows a job of the app, so the shards are
// combined with `max without (instance)`; the exporters' own series (modal_exporter_*, process_*)
// and the errors of their own calls (modal_operator_errors_total with a component other than
// "operator": API calls and scrapes that each process makes) describe each process and are
// compared only by label set.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "promql_scan.h"
#include "support/e2e_world.h"
#include "support/http_client.h"
#include "support/process.h"

namespace mx {
namespace {

using nlohmann::json;
using testing::ChildProcess;
using testing::http_get;
using testing::read_file;
using testing::wait_until;

struct Exporter {
  std::string name;  // also its log file's name
  std::vector<std::string> flags;
  std::uint16_t port = 0;
  std::unique_ptr<ChildProcess> process;
};

double wall_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

class ShardedEndToEnd : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = testing::make_scratch_dir("modal-e2e-shard");
    ASSERT_FALSE(dir_.empty());
    // More jobs than the unsharded e2e test: each shard must get a fair share of each kind.
    sim_ = new testing::Simulator(MX_SIM_BINARY, dir_, 16, 23);
    ASSERT_NE(sim_->port(), 0) << sim_->log();
    const std::string config = testing::write_fast_exporter_config(dir_);
    exporters_.push_back({"shard-0", {"--shard=0", "--total-shards=2"}, 0, nullptr});
    exporters_.push_back({"shard-1", {"--shard=1", "--total-shards=2"}, 0, nullptr});
    exporters_.push_back({"unsharded", {}, 0, nullptr});
    for (auto& e : exporters_) {
      e.port = testing::free_port();
      std::vector<std::string> args = {MX_EXPORTER_BINARY,
                                       "--config",
                                       config,
                                       "--kubeconfig",
                                       sim_->kubeconfig(),
                                       "--web.listen-address=127.0.0.1:" + std::to_string(e.port)};
      args.insert(args.end(), e.flags.begin(), e.flags.end());
      e.process =
          std::make_unique<ChildProcess>(args, dir_ + "/" + e.name + ".log", sim_->exporter_env());
      ASSERT_NE(testing::wait_listening(*e.process), 0) << e.process->output();
    }
    auto target = [](const Exporter& e) { return "'127.0.0.1:" + std::to_string(e.port) + "'"; };
    prometheus_ = new testing::Prometheus(MX_PROMETHEUS_BINARY, dir_,
                                          "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                                          "scrape_configs:\n"
                                          "  - job_name: shards\n"
                                          "    honor_labels: true\n"
                                          "    static_configs: [{targets: [" +
                                              target(exporters_[0]) + ", " + target(exporters_[1]) +
                                              "]}]\n"
                                              "  - job_name: unsharded\n"
                                              "    honor_labels: true\n"
                                              "    static_configs: [{targets: [" +
                                              target(exporters_[2]) + "]}]\n");

    for (const auto& e : exporters_) {
      ASSERT_TRUE(wait_until([&] {
        try {
          return http_get(e.port, "/readyz").status == 200;
        } catch (...) {
          return false;
        }
      })) << e.name
          << " not ready: " << e.process->output();
    }
    // 15 s of simulated life (arrivals, queueing, runs, failures with Warning Events,
    // cancellations, deletions), then the world freezes.
    sim_->control("resume");
    std::this_thread::sleep_for(std::chrono::seconds(15));
    sim_->control("pause");
    // Warning Events about every live job (ModalJobs and offloaded Pods of both shards), each
    // carrying its object's UID as Kubernetes writes it: each counts in one shard only.
    sim_->control("warning-events");
    // A restart of the operator (a fleet-wide singleton, from shard 0 only), so that a shard
    // that exported it as well would add up to twice the count rather than to 0 + 0.
    sim_->control("operator-restart");
    // Every exporter polls every source within 2 s (write_fast_exporter_config) and Prometheus
    // scrapes every second: a scrape of each target that starts 5 s after the pause holds the
    // final state (the comparisons below still wait for convergence, up to their deadline).
    const double settled_after = wall_now() + 5;
    ASSERT_TRUE(wait_until(
        [&] {
          const auto scraped = prometheus_->vector_of(
              R"(timestamp(up{job=~"shards|unsharded"}) and up == 1)", {"instance"});
          if (scraped.size() != exporters_.size()) return false;
          return std::all_of(scraped.begin(), scraped.end(),
                             [&](const auto& s) { return s.second > settled_after; });
        },
        std::chrono::seconds(60)))
        << prometheus_->log();
  }

  static void TearDownTestSuite() {
    std::vector<ChildProcess*> all = {prometheus_ ? &prometheus_->process() : nullptr,
                                      sim_ ? &sim_->process() : nullptr};
    for (auto& e : exporters_) all.push_back(e.process.get());
    testing::stop_all(all);
    delete prometheus_;
    exporters_.clear();
    delete sim_;
    testing::remove_scratch_dir_unless_failed(dir_);
  }

  // Series of an instant query as {label set without __name__, job and instance -> value}.
  static std::map<std::string, double> series(const std::string& promql) {
    std::map<std::string, double> out;
    const auto j = prometheus_->query(promql);
    if (j.value("status", "") != "success") return out;
    for (const auto& s : j["data"]["result"]) {
      out[label_set(s["metric"], {"__name__", "job", "instance"})] =
          std::stod(s["value"][1].get<std::string>());
    }
    return out;
  }

  // "name=value,..." of a series' labels (sorted by name), without those in `skip`.
  static std::string label_set(const json& metric, const std::set<std::string>& skip) {
    std::string out;
    for (const auto& [name, value] : metric.items()) {
      if (skip.count(name)) continue;
      out += (out.empty() ? "" : ",") + name + "=" + value.get<std::string>();
    }
    return out;
  }

  // Metric names (sample names: histograms as _bucket/_sum/_count) served by the exporters,
  // without their own modal_exporter_* series.
  static std::set<std::string> families(const std::string& job) {
    std::set<std::string> out;
    const auto j =
        prometheus_->query(R"(count by (__name__) ({job=")" + job +
                           R"(", __name__=~"modal_.+", __name__!~"modal_exporter_.+"}))");
    for (const auto& s : j["data"]["result"])
      out.insert(s["metric"]["__name__"].get<std::string>());
    return out;
  }

  static inline std::string dir_;
  static inline testing::Simulator* sim_ = nullptr;
  static inline std::vector<Exporter> exporters_;
  static inline testing::Prometheus* prometheus_ = nullptr;
};

// One comparison: the shards combined by `shards_promql` against the unsharded exporter's
// `unsharded_promql`, label set by label set.
struct Comparison {
  std::string what, shards_promql, unsharded_promql;
  double tolerance = 1e-9;     // relative (floating-point sums in another order)
  bool compare_values = true;  // false: the same label sets suffice
  // Optional: a query whose series give an absolute allowance for the same label sets.
  std::string slack_promql = {};
};

std::vector<Comparison> comparisons_for(const std::string& family) {
  const std::string unsharded = family + R"({job="unsharded"})";
  auto over_shards = [&](const std::string& aggregation, const std::string& matchers) {
    return aggregation + " without (instance) (" + family + R"({job="shards")" + matchers + "})";
  };
  if (family == "modal_app_cost_usd") {
    // Every shard that knows a job of an app renders the app's whole bill (docs/design.md).
    return {{family, over_shards("max", ""), unsharded}};
  }
  if (family == "modal_operator_errors_total") {
    return {
        {family + R"({component="operator"})", over_shards("sum", R"(, component="operator")"),
         family + R"({job="unsharded", component="operator"})"},
        // Errors of each process's own API calls and scrapes: not the same calls.
        {family + R"({component!="operator"})", over_shards("sum", R"(, component!="operator")"),
         family + R"({job="unsharded", component!="operator"})", 0, false}};
  }
  if (family == "modal_cost_estimate_usd") {
    // A running job's total is time-driven (hourly rate x time since its start) and each
    // exporter refreshes it at most once a minute, on its own tick (docs/metrics.md): two
    // processes may be up to a minute and a tick apart, i.e. 90 s of the job's hourly rate.
    return {{family + R"({time_period!="total"})", over_shards("sum", R"(, time_period!="total")"),
             family + R"({job="unsharded", time_period!="total"})"},
            {family + R"({time_period="total"})", over_shards("sum", R"(, time_period="total")"),
             family + R"({job="unsharded", time_period="total"})", 1e-9, true,
             R"(label_replace(modal_cost_estimate_usd{job="unsharded", time_period="hourly"})"
             R"( * 90 / 3600, "time_period", "total", "", ""))"}};
  }
  if (family == "modal_network_bandwidth_mbps") {
    // A rate between two scrapes of the job's byte counters: the simulator's counters are whole
    // bytes (floor), so exporters that scrape at different moments differ in the last digits.
    return {{family, over_shards("sum", ""), unsharded, 0.01}};
  }
  return {{family, over_shards("sum", ""), unsharded}};
}

// "" when `shards` equals `unsharded` label set by label set, else the differences.
std::string differences(const std::map<std::string, double>& shards,
                        const std::map<std::string, double>& unsharded, const Comparison& c,
                        const std::map<std::string, double>& slack) {
  std::ostringstream diff;
  for (const auto& [labels, want] : unsharded) {
    const auto it = shards.find(labels);
    const auto allowance = slack.find(labels);
    const double allowed = std::max(c.tolerance * std::max(1.0, std::fabs(want)),
                                    allowance == slack.end() ? 0.0 : allowance->second);
    if (it == shards.end()) {
      diff << "{" << labels << "}: only unsharded (" << want << "); ";
    } else if (c.compare_values && std::fabs(it->second - want) > allowed) {
      diff << "{" << labels << "}: shards " << it->second << ", unsharded " << want << "; ";
    }
  }
  for (const auto& [labels, got] : shards) {
    if (!unsharded.count(labels)) diff << "{" << labels << "}: only in shards (" << got << "); ";
  }
  return diff.str();
}

TEST_F(ShardedEndToEnd, ShardsAddUpToTheUnshardedExporterPerLabelSet) {
  const auto unsharded_families = families("unsharded");
  const auto shard_families = families("shards");
  EXPECT_EQ(shard_families, unsharded_families) << "the shards serve other families";
  ASSERT_GE(unsharded_families.size(), 20u);
  for (const auto& family : unsharded_families) {
    for (const auto& c : comparisons_for(family)) {
      std::string diff;
      std::size_t label_sets = 0;
      const bool equal = wait_until(
          [&] {
            const auto unsharded = series(c.unsharded_promql);
            label_sets = unsharded.size();
            const auto slack =
                c.slack_promql.empty() ? std::map<std::string, double>() : series(c.slack_promql);
            diff = differences(series(c.shards_promql), unsharded, c, slack);
            return diff.empty();
          },
          std::chrono::seconds(30));
      EXPECT_TRUE(equal) << c.what << ": " << c.shards_promql << " vs " << c.unsharded_promql
                         << ": " << diff;
      if (c.compare_values) {
        EXPECT_GT(label_sets, 0u) << c.what << ": nothing to compare";
      }
    }
  }
}

// The metrics of every seed query and alert (monitoring/seed-queries.yaml, as written and as
// shipped) are among the families compared above, with data.
TEST_F(ShardedEndToEnd, EverySeedMetricIsCompared) {
  const auto compared = families("unsharded");
  const YAML::Node seed = YAML::LoadFile(MX_SOURCE_DIR "/monitoring/seed-queries.yaml");
  std::set<std::string> names;
  for (const char* section : {"queries", "alerts"}) {
    for (const auto& q : seed[section]) {
      for (const char* field : {"seed", "query"}) {
        for (const auto& n : deploy::promql_metric_names(q[field].as<std::string>())) {
          names.insert(n);
        }
      }
    }
  }
  ASSERT_GE(names.size(), 10u);
  for (const auto& name : names) {
    // A histogram's name stands for its _bucket, _sum and _count series.
    const bool found =
        compared.count(name) || (compared.count(name + "_bucket") &&
                                 compared.count(name + "_sum") && compared.count(name + "_count"));
    EXPECT_TRUE(found) << name << " of the seed queries has no data to compare";
  }
}

// Per-object series (a job's: job_name; an endpoint's: endpoint) come from exactly one shard.
TEST_F(ShardedEndToEnd, NoPerObjectSeriesInTwoShards) {
  std::map<std::string, std::set<std::string>> instances;  // series -> shards serving it
  std::map<std::string, std::size_t> per_shard;            // instance -> per-object series
  for (const char* label : {"job_name", "endpoint"}) {
    const auto j = prometheus_->query(std::string(R"({job="shards", )") + label + R"(=~".+"})");
    ASSERT_EQ(j.value("status", ""), "success") << j.dump();
    for (const auto& s : j["data"]["result"]) {
      const auto instance = s["metric"]["instance"].get<std::string>();
      instances[label_set(s["metric"], {"instance", "job"})].insert(instance);
      ++per_shard[instance];
    }
  }
  for (const auto& [series, shards] : instances) {
    EXPECT_EQ(shards.size(), 1u) << series << " is served by " << shards.size() << " shards";
  }
  EXPECT_EQ(per_shard.size(), 2u) << "every shard serves per-object series";
  // Per-object series of the unsharded exporter: all of them are in the shards.
  std::size_t unsharded = 0;
  for (const char* label : {"job_name", "endpoint"}) {
    const auto j = prometheus_->query(std::string(R"({job="unsharded", )") + label + R"(=~".+"})");
    unsharded += j["data"]["result"].size();
  }
  EXPECT_EQ(instances.size(), unsharded);
}

// Fleet-wide series that belong to no job (operator restarts, Modal app- and environment-level
// series) come from shard 0 only (docs/design.md, "Sharding").
TEST_F(ShardedEndToEnd, FleetWideSingletonsComeFromShardZeroOnly) {
  const std::string shard0 = "127.0.0.1:" + std::to_string(exporters_[0].port);
  for (const char* family :
       {"modal_operator_restarts_total", "modal_app_running_tasks", "modal_environment_info"}) {
    const auto served = prometheus_->vector_of(
        std::string("count by (instance) (") + family + R"({job="shards"}))", {"instance"});
    EXPECT_EQ(served.size(), 1u) << family << " is served by " << served.size() << " shards";
    EXPECT_TRUE(served.count(shard0)) << family << " is not served by shard 0";
  }
  const auto restarts =
      prometheus_->vector_of(R"(modal_operator_restarts_total{job="shards"})", {});
  ASSERT_EQ(restarts.size(), 1u);
  EXPECT_EQ(restarts.begin()->second, sim_->truth()["operator_restarts"].get<double>());
  EXPECT_GT(restarts.begin()->second, 0);
}

// Each shard holds some of the jobs, together they hold what the unsharded exporter holds, and
// each counts the other's live jobs as foreign (modal_exporter_shard_jobs).
TEST_F(ShardedEndToEnd, ShardsSplitTheJobs) {
  const auto jobs = prometheus_->vector_of(R"(count(modal_job_info{job="unsharded"}))", {});
  ASSERT_EQ(jobs.size(), 1u);
  const double all = jobs.begin()->second;
  EXPECT_GE(all, 10);
  std::map<std::string, double> owned, foreign;
  EXPECT_TRUE(wait_until([&] {
    owned = prometheus_->vector_of(R"(modal_exporter_shard_jobs{ownership="owned"})", {"instance"});
    foreign =
        prometheus_->vector_of(R"(modal_exporter_shard_jobs{ownership="foreign"})", {"instance"});
    double sum = 0;
    for (const auto& [instance, n] : owned) sum += n;
    return owned.size() == 2 && foreign.size() == 2 && sum == all;
  })) << "owned: "
      << ::testing::PrintToString(owned) << ", all: " << all;
  for (const auto& [instance, n] : owned) {
    EXPECT_GT(n, 0) << instance << " owns no job";
    EXPECT_EQ(n + foreign[instance], all) << instance;
  }
  // Each shard counted the Warning Events about its own jobs (the sum over the shards equals
  // the unsharded count: ShardsAddUpToTheUnshardedExporterPerLabelSet).
  const auto events = prometheus_->vector_of(
      R"(sum by (instance) (modal_operator_errors_total{job="shards", component="operator"}))",
      {"instance"});
  EXPECT_EQ(events.size(), 2u);
  for (const auto& [instance, n] : events) EXPECT_GT(n, 0) << instance << " counted no Event";
  // The unsharded exporter has no such gauge: it is not sharded.
  EXPECT_TRUE(prometheus_->vector_of(R"(modal_exporter_shard_jobs{job="unsharded"})", {}).empty());
}

}  // namespace
}  // namespace mx
