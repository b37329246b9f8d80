// The per-job metric table: each entry writes one job's samples with the base labels bound once.
// A new per-job metric is one entry in src/metrics/job_families.cpp plus a test here.
#include <gtest/gtest.h>

#include <set>

#include "metrics/job_families.h"

namespace mx {
namespace {

class JobFamiliesTest : public ::testing::Test {
 protected:
  JobFamiliesTest() : model_(Config{}, [] { return 5000.0; }) {
    JobObject j;
    j.uid = "u-1";
    j.kind = "ModalJob";
    j.namespace_name = "ml";
    j.name = "train";
    j.gpu_type = "T4";
    j.gpu_count = 1;
    j.replicas = 2;
    j.phase = "Running";
    j.created_at = 1000;
    j.started_at = 2000;
    j.modal_app_id = "ap-1";
    j.modal_function_id = "fu-1";
    model_.upsert_job(j);
    model_.job_telemetry({"u-1", 0.75, 12.5, std::nullopt});
    model_.modal_function_stats({"fu-1", 7, 0, 0});
  }

  // The samples the entries named `family` (the family and its continuations) write for u-1.
  std::string samples(const std::string& family) {
    const JobState& state = model_.jobs().at("u-1");
    const CountedJob* counted = model_.counted("u-1");
    const JobView view{model_, state, counted, effective_start(state.object, counted)};
    std::string out;
    bool found = false;
    for (const auto& f : job_families()) {
      if (f.desc.name != family) continue;
      found = true;
      JobSamples s(out, f.desc.name, state.object);
      f.write(view, s);
    }
    if (!found) ADD_FAILURE() << "no table entry " << family;
    return out;
  }

  Model model_;
};

TEST_F(JobFamiliesTest, NamesAreUniqueAndEveryEntryBindsTheBaseLabels) {
  std::set<std::string> names;
  const JobFamily* previous = nullptr;
  for (const auto& f : job_families()) {
    // A continuation follows its family, the same in all but the flag.
    if (f.desc.continues) {
      ASSERT_NE(previous, nullptr);
      EXPECT_EQ(f.desc.name, previous->desc.name);
      EXPECT_EQ(f.desc.help, previous->desc.help);
      EXPECT_EQ(f.desc.type, previous->desc.type);
    } else {
      EXPECT_TRUE(names.insert(f.desc.name).second) << f.desc.name;
    }
    previous = &f;
    EXPECT_FALSE(f.desc.help.empty()) << f.desc.name;
    const std::string out = samples(f.desc.name);
    for (std::size_t pos = 0; (pos = out.find(f.desc.name + "{", pos)) != std::string::npos;
         ++pos) {
      const std::string base = f.desc.name + R"({namespace="ml",job_name="train")";
      EXPECT_EQ(out.compare(pos, base.size(), base), 0) << out;
    }
  }
}

TEST_F(JobFamiliesTest, EachEntryWritesItsSamples) {
  // No TaskList answer yet: the cold-start count is unknown, so absent (never a made-up 0).
  EXPECT_EQ(samples("modal_function_cold_starts_total"), "");
  EXPECT_EQ(samples("modal_job_replicas"),
            "modal_job_replicas{namespace=\"ml\",job_name=\"train\"} 2\n");
  EXPECT_EQ(samples("modal_gpu_utilization"),
            "modal_gpu_utilization{namespace=\"ml\",job_name=\"train\",gpu_type=\"T4\"} 0.75\n");
  EXPECT_EQ(
      samples("modal_network_bandwidth_mbps"),
      "modal_network_bandwidth_mbps{namespace=\"ml\",job_name=\"train\",direction=\"ingress\"}"
      " 12.5\n");  // no egress figure: no egress series
  EXPECT_EQ(samples("modal_function_backlog"),
            "modal_function_backlog{namespace=\"ml\",job_name=\"train\"} 7\n");
  EXPECT_EQ(samples("modal_job_start_time_seconds"),
            "modal_job_start_time_seconds{namespace=\"ml\",job_name=\"train\",gpu_type=\"T4\"} "
            "2000\n");
  // Modal's task start wins over the status once known.
  model_.modal_tasks("ap-1", {{"ta-1", "ap-1", 1990.0, 1995.0}});
  EXPECT_EQ(samples("modal_job_start_time_seconds"),
            "modal_job_start_time_seconds{namespace=\"ml\",job_name=\"train\",gpu_type=\"T4\"} "
            "1995\n");
  EXPECT_EQ(samples("modal_function_cold_starts_total"),
            "modal_function_cold_starts_total{namespace=\"ml\",job_name=\"train\",gpu_type=\"T4\"} "
            "1\n");
  EXPECT_EQ(samples("modal_job_info"),
            "modal_job_info{namespace=\"ml\",job_name=\"train\",uid=\"u-1\",kind=\"ModalJob\","
            "gpu_type=\"T4\",replicas=\"2\",app_id=\"ap-1\"} 1\n");
  const std::string phases = samples("modal_job_status_phase");
  EXPECT_NE(phases.find(R"(phase="Running"} 1)"), std::string::npos) << phases;
  EXPECT_NE(phases.find(R"(phase="Pending"} 0)"), std::string::npos) << phases;
  const std::string cost = samples("modal_cost_estimate_usd");
  EXPECT_NE(cost.find(R"(time_period="hourly"})"), std::string::npos) << cost;
  EXPECT_NE(cost.find(R"(time_period="total"})"), std::string::npos) << cost;
  EXPECT_EQ(cost.find(R"(time_period="daily"})"), std::string::npos) << cost;  // no billing yet
}

}  // namespace
}  // namespace mx
