// The world the benchmark drivers serve to the real exporter (bench_kube_load, bench_chaos):
// ModalJobs as the operator writes them, and Modal's side of each job from the fake Modal server
// of tests/fakes (built with the Modal source only; MX_BENCH_WITH_MODAL).
#pragma once

#include <cstdint>
#include <ctime>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#ifdef MX_BENCH_WITH_MODAL
#include <chrono>

#include "fake_modal_server.h"
#endif

namespace mx::bench {

inline constexpr const char* kGroupVersion = "modal-operator.io/v1alpha1";
inline constexpr const char* kPlural = "modaljobs";

struct GpuChoice {
  const char* type;
  const char* spec;  // as written in spec.gpu; nullptr = no GPU
};
// Roughly what a GPU cluster runs: many small inference GPUs, some big training ones.
inline constexpr GpuChoice kGpus[] = {{"none", nullptr},
                                      {"T4", "T4"},
                                      {"L4", "L4:1"},
                                      {"A10G", "A10G:1"},
                                      {"A100-80GB", "A100-80GB:2"},
                                      {"H100", "H100:8"}};

// The operator writes its timestamps without a zone.
std::string iso_utc(std::time_t t);

struct Job {
  std::uint64_t id = 0;
  std::string namespace_name;
  std::string name;
  const GpuChoice* gpu = &kGpus[0];
  int replicas = 1;
  bool i6pn = false;
  int cpu = 1;
  int memory_gib = 1;
  std::string phase = "Running";  // Pending, Running, Succeeded or Failed
  std::time_t created_at = 0;
  std::time_t started_at = 0;   // unset (0) while Pending
  std::time_t finished_at = 0;  // set once Succeeded or Failed
  std::string telemetry_url;    // its modal-operator.io/telemetry-url; none when empty
};

// The GPUs a job asks for: spec.gpu's count ("H100:8"), 1 without one, 0 for no GPU.
int gpu_count(const Job& j);

std::string uid_of(const Job& j);
// The Modal ids of a job, as its status names them: "ap-" / "fu-" / "ta-" and this.
std::string modal_id_of(const Job& j);

// A ModalJob as the operator leaves it (docs/sources.md, "Objects read"), about 1.5 KB of JSON
// once it runs: the exporter has to read past everything it does not use.
nlohmann::json to_object(const Job& j);

// utime + stime in clock ticks and RSS figures of a process, from /proc; -1 when unreadable.
struct ProcSample {
  long long cpu_ticks = -1;
  long long rss_kb = -1;
  long long hwm_kb = -1;
};
ProcSample sample_process(int pid);

#ifdef MX_BENCH_WITH_MODAL
// Modal's side of the live jobs. The app list and the billing rows are whole lists in the fake
// server: changes are collected and handed over at most once a second (flush), so that a churn
// at 50k jobs does not copy 50k items per change.
class ModalWorld {
 public:
  ModalWorld();
  std::string address() const { return server_.address(); }
  // For fault injection; the data is this class's business.
  mx::testing::FakeModalServer& server() { return server_; }

  // An app with one running task, a function with a backlog, billing rows ("d": today; "h":
  // the last two hours).
  void add(const Job& j);
  void remove(const Job& j);
  void flush(bool now = false);

 private:
  using Item = ::modal::client::WorkspaceBillingReportItem;
  using Rows = std::map<std::string, std::vector<Item>>;

  mx::testing::FakeModalServer server_;
  std::map<std::string, ::modal::client::AppListResponse::AppListItem> apps_;
  Rows daily_, hourly_;
  bool dirty_ = false;
  std::chrono::steady_clock::time_point flushed_{};
};
#else
class ModalWorld {  // a build without the Modal source: the drivers refuse --modal
 public:
  std::string address() const { return {}; }
  void add(const Job&) {}
  void remove(const Job&) {}
  void flush(bool = false) {}
};
#endif

}  // namespace mx::bench
