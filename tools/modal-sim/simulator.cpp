#include "simulator.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>

namespace mx::sim {
namespace {

constexpr const char* kJobsGv = "modal-operator.io/v1alpha1";

struct GpuChoice {
  const char* type;
  int count;
  const char* spec;  // as written in a ModalJob spec / Pod annotation; nullptr = no GPU
};
constexpr GpuChoice kGpus[] = {{"none", 0, nullptr},  {"T4", 1, "T4"},
                               {"A10G", 1, "A10G:1"}, {"A100-80GB", 2, "A100-80GB:2"},
                               {"H100", 1, "H100"},   {"L4", 1, "L4:1"}};

// Published prices (the exporter's fallback table) and what the fake Modal returns as rates:
// some differ from the table so that a test can tell which one the exporter used; A10G and L4
// are missing from the rates on purpose (fallback).
const std::map<std::string, double> kTablePerHour = {
    {"T4", 0.5904}, {"A10G", 1.1016}, {"A100-80GB", 2.4984}, {"H100", 3.9492}, {"L4", 0.7992}};
const std::map<std::string, std::string> kModalRates = {
    {"T4", "0.60"}, {"A100-80GB", "2.50"}, {"H100", "4.00"}, {"CPU", "0.05"}, {"Memory", "0.008"}};
constexpr double kTableCpu = 0.04716, kTableMemory = 0.007992;

std::string iso(double t, bool zone) {
  const auto secs = static_cast<std::time_t>(std::floor(t));
  const int micros = static_cast<int>((t - std::floor(t)) * 1e6);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06d%s", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, micros,
                zone ? "Z" : "");
  return buf;
}

nlohmann::json ts_or_null(double t, bool zone) {
  return t > 0 ? nlohmann::json(iso(t, zone)) : nlohmann::json(nullptr);
}

std::string usd(std::int64_t nano) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%lld.%09lld", static_cast<long long>(nano / 1000000000),
                static_cast<long long>(nano % 1000000000));
  return buf;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

const char* const kModalMethods[] = {"AuthTokenGet",
                                     "AppList",
                                     "TaskList",
                                     "TaskGetInfo",
                                     "FunctionGetCurrentStats",
                                     "WorkspaceBillingReport",
                                     "WorkspaceBillingRates",
                                     "EnvironmentList",
                                     "EnvironmentBillingSummary"};

}  // namespace

Simulator::Simulator(SimOptions options) : options_(options), rng_(options.seed) {}

void Simulator::start(const std::string& telemetry_base_url) {
  telemetry_base_ = telemetry_base_url;
  kube_.start();
  modal_.set_rates(kModalRates);
  publish_environments();
  publish_operator_pod();
  for (int i = 0; i < 2; ++i) {
    const std::string name = i == 0 ? "chat-api" : "embeddings";
    kube_.upsert(
        kJobsGv, "modalendpoints",
        {{"apiVersion", kJobsGv},
         {"kind", "ModalEndpoint"},
         {"metadata", {{"name", name}, {"namespace", "serving"}}},
         {"spec", {{"image", "python:3.11"}, {"handler", "app.serve"}, {"max_replicas", 4}}},
         {"status", {{"phase", "Running"}, {"ready_replicas", i + 1}}}});
  }
}

std::map<std::string, double> Simulator::hourly_cost_by_resource(const SimJob& j) const {
  auto rate = [&](const std::string& key, double fallback) {
    for (const auto& [k, v] : kModalRates) {
      if (lower(k) == lower(key)) return std::stod(v);
    }
    return fallback;
  };
  std::map<std::string, double> out;
  if (j.gpu_count > 0) {
    out[j.gpu_type] = rate(j.gpu_type, kTablePerHour.at(j.gpu_type)) * j.gpu_count * j.replicas;
  }
  out["CPU"] = rate("cpu", kTableCpu) * j.cpu * j.replicas;
  out["Memory"] = rate("memory", kTableMemory) * j.memory_gib * j.replicas;
  return out;
}

double Simulator::hourly_cost(const SimJob& j) const {
  auto rate = [&](const std::string& key, double fallback) {
    for (const auto& [k, v] : kModalRates) {
      if (lower(k) == lower(key)) return std::stod(v);
    }
    return fallback;
  };
  double gpu = 0;
  if (j.gpu_count > 0) gpu = rate(j.gpu_type, kTablePerHour.at(j.gpu_type)) * j.gpu_count;
  return (gpu + rate("cpu", kTableCpu) * j.cpu + rate("memory", kTableMemory) * j.memory_gib) *
         j.replicas;
}

void Simulator::create_job(double now) {
  SimJob j;
  const auto id = next_id_++;
  char uid[64];
  std::snprintf(uid, sizeof uid, "5157a1d0-0000-4000-8000-%012llu",
                static_cast<unsigned long long>(id));
  j.uid = uid;
  j.kind = chance(0.3) ? "Pod" : "ModalJob";
  j.namespace_name = chance(0.5) ? "ml-team" : "research";
  j.name = (j.kind == "Pod" ? "infer-" : "train-") + std::to_string(id);
  const auto& gpu = kGpus[std::uniform_int_distribution<int>(0, 5)(rng_)];
  j.gpu_type = gpu.type;
  j.gpu_count = gpu.count;
  const double r = uniform(0, 1);
  j.replicas = r < 0.7 ? 1 : (r < 0.9 ? 2 : 4);
  j.i6pn = j.replicas > 1 && chance(0.5);
  const int size = std::uniform_int_distribution<int>(0, 2)(rng_);
  j.cpu = size == 0 ? 1 : (size == 1 ? 2 : 4);
  j.memory_gib = size == 0 ? 0.5 : (size == 1 ? 4 : 16);
  j.created_at = now;
  j.run_at = now + uniform(options_.min_queue_s, options_.max_queue_s);
  j.fails = chance(0.1);
  j.cancels = !j.fails && chance(0.05);
  const std::string labels = "|" + j.gpu_type + "|" + std::to_string(j.replicas);
  ++jobs_total_["created" + labels];
  // The exporter starts the other statuses of a known GPU type and replica count at 0.
  for (const char* status : {"completed", "failed", "cancelled"}) jobs_total_[status + labels] += 0;
  if (j.i6pn) ++i6pn_total_[std::to_string(j.replicas)];
  if (j.kind == "Pod") ++webhook_mutated_;  // every simulated offloaded Pod is mutated
  jobs_.emplace(j.uid, j);
  publish_job(jobs_.at(j.uid));
}

void Simulator::publish_job(const SimJob& j) {
  const char* spec = nullptr;
  for (const auto& g : kGpus) {
    if (j.gpu_type == g.type) spec = g.spec;
  }
  const std::string memory = j.memory_gib < 1 ? "512Mi" : std::to_string(int(j.memory_gib)) + "Gi";
  const std::string telemetry = telemetry_base_ + "/telemetry/" + j.uid;
  if (j.kind == "ModalJob") {
    nlohmann::json annotations = nlohmann::json::object();
    if (j.phase != "Pending") annotations["modal-operator.io/telemetry-url"] = telemetry;
    kube_.upsert(
        kJobsGv, "modaljobs",
        {{"apiVersion", kJobsGv},
         {"kind", "ModalJob"},
         {"metadata",
          {{"name", j.name},
           {"namespace", j.namespace_name},
           {"uid", j.uid},
           {"annotations", annotations}}},
         {"spec",
          {{"image", "pytorch/pytorch:2.4"},
           {"gpu", spec ? nlohmann::json(spec) : nlohmann::json(nullptr)},
           {"replicas", j.replicas},
           {"enable_i6pn", j.i6pn},
           {"cpu", std::to_string(int(j.cpu))},
           {"memory", memory}}},
         // The operator writes its timestamps without a zone (UTC).
         {"status",
          {{"phase", j.phase},
           {"created_at", iso(j.created_at, false)},
           {"started_at", ts_or_null(j.started_at, false)},
           {"finished_at", ts_or_null(j.finished_at, false)},
           {"modal_app_id", j.app_id.empty() ? nlohmann::json(nullptr) : nlohmann::json(j.app_id)},
           {"modal_function_id",
            j.function_id.empty() ? nlohmann::json(nullptr) : nlohmann::json(j.function_id)}}}});
    return;
  }
  nlohmann::json annotations = {{"modal-operator.io/use-modal", "true"},
                                {"modal-operator.io/mutated", "true"},
                                {"modal-operator.io/replicas", std::to_string(j.replicas)},
                                {"modal-operator.io/enable-i6pn", j.i6pn ? "true" : "false"},
                                {"modal-operator.io/cpu", std::to_string(int(j.cpu))},
                                {"modal-operator.io/memory", memory}};
  if (spec) annotations["modal-operator.io/gpu"] = spec;
  if (j.phase != "Pending") annotations["modal-operator.io/telemetry-url"] = telemetry;
  nlohmann::json status = {{"phase", j.phase}};
  if (j.started_at > 0) status["startTime"] = iso(j.started_at, true);
  if (j.finished_at > 0) {
    nlohmann::json terminated = {{"exitCode", j.phase == "Failed" ? 1 : 0},
                                 {"finishedAt", iso(j.finished_at, true)}};
    nlohmann::json container = {{"name", "main"}, {"restartCount", 0}};
    container["state"]["terminated"] = terminated;
    status["containerStatuses"] = nlohmann::json::array({container});
  }
  kube_.upsert("v1", "pods",
               {{"apiVersion", "v1"},
                {"kind", "Pod"},
                {"metadata",
                 {{"name", j.name},
                  {"namespace", j.namespace_name},
                  {"uid", j.uid},
                  {"labels", {{"app", "modal-offload"}}},
                  {"annotations", annotations}}},
                {"spec", {{"containers", {{{"name", "main"}, {"image", "python:3.11"}}}}}},
                {"status", status}});
}

void Simulator::publish_operator_pod() {
  kube_.upsert("v1", "pods",
               {{"apiVersion", "v1"},
                {"kind", "Pod"},
                {"metadata",
                 {{"name", kOperatorPod},
                  {"namespace", kOperatorNamespace},
                  {"labels", {{"app.kubernetes.io/name", "modal-operator"}}}}},
                {"spec",
                 {{"containers",
                   {{{"name", "modal-operator"}, {"image", "modal-operator:0.1"}},
                    {{"name", "modal-exporter"}, {"image", "modal-exporter:0.1"}}}}}},
                {"status",
                 {{"phase", "Running"},
                  {"containerStatuses",
                   {{{"name", "modal-operator"}, {"restartCount", operator_restarts_}},
                    {{"name", "modal-exporter"}, {"restartCount", 0}}}}}}});
}

// A Warning Event that repeats is updated in place with a growing count, as Kubernetes does.
void Simulator::warning_event(const SimJob& j, const std::string& reason) {
  const std::string name = j.name + "." + lower(reason);
  auto& count = event_counts_[j.namespace_name + "/" + name];
  const int growth = 1 + static_cast<int>(uniform(0, 3));
  count += growth;
  errors_by_reason_[reason] += growth;
  kube_.upsert("v1", "events",
               {{"apiVersion", "v1"},
                {"kind", "Event"},
                {"metadata", {{"name", name}, {"namespace", j.namespace_name}}},
                {"type", "Warning"},
                {"reason", reason},
                {"message", "simulated: " + reason},
                {"count", count},
                {"involvedObject",
                 {{"apiVersion", j.kind == "Pod" ? "v1" : kJobsGv},
                  {"kind", j.kind},
                  {"name", j.name},
                  {"namespace", j.namespace_name},
                  // As Kubernetes writes it: a sharded exporter counts the Event in the shard
                  // that owns this UID.
                  {"uid", j.uid}}}});
}

void Simulator::step(double now) {
  const double dt = last_step_ > 0 ? now - last_step_ : 0;
  last_step_ = now;
  if (paused_) return;
  lived_s_ += dt;
  if (next_restart_ == 0) next_restart_ = now + options_.restart_every_s * uniform(0.5, 1.5);
  if (now >= next_restart_) {
    restart_operator();
    next_restart_ = now + options_.restart_every_s * uniform(0.5, 1.5);
  }

  std::vector<std::string> deleted;
  for (auto& [uid, j] : jobs_) {
    bool changed = false;
    if (j.phase == "Pending" && now >= j.run_at) {
      j.phase = "Running";
      j.started_at = now;
      // Queueing as the exporter sees it: Modal's task times for ModalJobs (enqueued 0.25 s
      // after creation, see below), the status timestamps for Pods.
      auto& queue = queues_[j.gpu_type];
      ++queue.first;
      queue.second += now - j.created_at - (j.kind == "ModalJob" ? 0.25 : 0.0);
      j.run_at = now + uniform(options_.min_run_s, options_.max_run_s);
      if (j.kind == "ModalJob") {
        j.app_id = "ap-" + uid.substr(uid.size() - 8);
        j.function_id = "fu-" + uid.substr(uid.size() - 8);
        for (int r = 0; r < j.replicas; ++r) {
          j.tasks.push_back({"ta-" + uid.substr(uid.size() - 8) + "-" + std::to_string(r),
                             j.created_at + 0.25, now, 0});
        }
        j.backlog = static_cast<std::uint32_t>(uniform(0, 6));
      }
      for (int g = 0; g < j.gpu_count; ++g) j.gpu_util.push_back(std::round(uniform(30, 95)) / 100);
      j.rx_bps = std::round(uniform(1e5, 5e7));
      j.tx_bps = std::round(uniform(1e5, 2e7));
      changed = true;
    } else if (j.phase == "Running") {
      if (!j.app_id.empty()) {
        // Billed per resource, as Modal's cost_by_resource; the item's cost is their sum.
        for (const auto& [resource, per_hour] : hourly_cost_by_resource(j)) {
          const auto nano = static_cast<std::int64_t>(per_hour * dt / 3600.0 * 1e9);
          j.billed_by_resource[resource] += nano;
          j.billed_nano += nano;
          spent_nano_ += nano;
        }
      }
      // A container restarts: a new task, a cold start. Only in the first half of the run, so
      // that every task lives through several TaskList polls (the truth counts them all).
      if (!j.app_id.empty() && now < (j.started_at + j.run_at) / 2 && chance(0.02)) {
        j.tasks.push_back(
            {"ta-" + uid.substr(uid.size() - 8) + "-" + std::to_string(j.tasks.size()), now,
             now + 0.5, 0});
      }
      if (now >= j.run_at && j.cancels) {
        deleted.push_back(uid);
        ++jobs_total_["cancelled|" + j.gpu_type + "|" + std::to_string(j.replicas)];
        continue;
      }
      if (now >= j.run_at) {
        j.phase =
            j.fails ? "Failed" : (j.kind == "ModalJob" && chance(0.5) ? "Completed" : "Succeeded");
        if (j.kind == "Pod" && !j.fails) j.phase = "Succeeded";
        j.finished_at = now;
        for (auto& t : j.tasks) t.finished_at = now;
        auto& duration = durations_[std::string(j.fails ? "failed/" : "completed/") + j.gpu_type];
        ++duration.first;
        duration.second += j.finished_at - j.started_at;
        j.delete_at = now + uniform(options_.min_linger_s, options_.max_linger_s);
        ++jobs_total_[std::string(j.fails ? "failed|" : "completed|") + j.gpu_type + "|" +
                      std::to_string(j.replicas)];
        if (j.fails) warning_event(j, j.kind == "Pod" ? "BackOff" : "ModalJobFailed");
        changed = true;
      }
    } else if (!j.active() && now >= j.delete_at) {
      deleted.push_back(uid);
    }
    if (changed) publish_job(j);
  }
  for (const auto& uid : deleted) {
    const auto& j = jobs_.at(uid);
    kube_.remove(j.kind == "Pod" ? "v1" : kJobsGv, j.kind == "Pod" ? "pods" : "modaljobs",
                 j.namespace_name, j.name);
    jobs_.erase(uid);
  }
  int active = 0;
  for (const auto& [uid, j] : jobs_) active += j.active() ? 1 : 0;
  for (int created = 0; active < options_.target_jobs && created < options_.target_jobs / 5 + 1;
       ++created, ++active) {
    create_job(now);
  }
  if (chance(0.05)) {
    const int ready = static_cast<int>(uniform(0, 5));
    kube_.upsert(kJobsGv, "modalendpoints",
                 {{"apiVersion", kJobsGv},
                  {"kind", "ModalEndpoint"},
                  {"metadata", {{"name", "chat-api"}, {"namespace", "serving"}}},
                  {"spec", {{"image", "python:3.11"}, {"handler", "app.serve"}}},
                  {"status", {{"phase", "Running"}, {"ready_replicas", ready}}}});
  }
  publish_modal(now);
}

void Simulator::publish_modal(double now) {
  std::vector<testing::modal_pb::AppListResponse::AppListItem> apps;
  std::vector<testing::modal_pb::WorkspaceBillingReportItem> daily;
  const double midnight = std::floor(now / 86400) * 86400;
  for (const auto& [uid, j] : jobs_) {
    if (j.app_id.empty()) continue;
    testing::modal_pb::AppListResponse::AppListItem app;
    app.set_app_id(j.app_id);
    app.set_name(j.name);
    app.set_description(j.name);
    app.set_created_at(j.started_at);
    int running = 0;
    std::vector<testing::modal_pb::TaskStats> tasks;
    for (const auto& t : j.tasks) {
      if (t.finished_at > 0) continue;
      ++running;
      testing::modal_pb::TaskStats s;
      s.set_task_id(t.id);
      s.set_app_id(j.app_id);
      s.set_enqueued_at(t.enqueued_at);
      s.set_started_at(t.started_at);
      tasks.push_back(s);
      testing::modal_pb::TaskGetInfoResponse info;
      info.set_app_id(j.app_id);
      info.mutable_info()->set_id(t.id);
      info.mutable_info()->set_enqueued_at(t.enqueued_at);
      info.mutable_info()->set_started_at(t.started_at);
      info.mutable_info()->set_gpu_type(j.gpu_type == "none" ? "" : j.gpu_type);
      info.mutable_info()->mutable_gpu_config()->set_count(static_cast<unsigned>(j.gpu_count));
      modal_.set_task_info(t.id, info);
    }
    app.set_n_running_tasks(running);
    app.set_state(j.active() ? testing::modal_pb::APP_STATE_DEPLOYED
                             : testing::modal_pb::APP_STATE_STOPPED);
    apps.push_back(app);
    modal_.set_tasks(j.app_id, tasks);
    testing::modal_pb::FunctionStats stats;
    stats.set_backlog(j.backlog);
    stats.set_num_total_tasks(static_cast<unsigned>(running));
    modal_.set_function_stats(j.function_id, stats);
    {  // every app has today's row once it runs (0 before its first billed second)
      testing::modal_pb::WorkspaceBillingReportItem item;
      item.set_object_id(j.app_id);
      item.set_description(j.name);
      item.set_environment_name("main");
      item.mutable_interval()->set_seconds(static_cast<std::int64_t>(midnight));
      item.set_cost(usd(j.billed_nano));
      for (const auto& [resource, nano] : j.billed_by_resource) {
        (*item.mutable_cost_by_resource())[resource] = usd(nano);
      }
      daily.push_back(item);
    }
  }
  // A deployed web app that no Kubernetes object owns: still counted at the app level.
  testing::modal_pb::AppListResponse::AppListItem web;
  web.set_app_id("ap-webapp00");
  web.set_name("landing-page");
  web.set_state(testing::modal_pb::APP_STATE_DEPLOYED);
  web.set_n_running_tasks(3);
  apps.push_back(web);
  modal_.set_apps(apps);
  modal_.set_billing_items("d", daily);
  publish_environments();
}

// "main" runs the simulated jobs: its GPUs in use follow the running jobs up to its limit of
// 16 (past it, Modal would queue them), and its spend follows what the jobs are billed. "dev" has
// a task limit but no GPU limit, and a small budget its spend passes after about ten seconds of
// the world's life: its spend limit is reached from then on.
void Simulator::publish_environments() {
  constexpr std::int64_t kMainGpuLimit = 16;
  std::int64_t gpus = 0, tasks = 0;
  for (const auto& [uid, j] : jobs_) {
    if (j.phase != "Running") continue;
    gpus += static_cast<std::int64_t>(j.gpu_count) * j.replicas;
    for (const auto& t : j.tasks) tasks += t.finished_at > 0 ? 0 : 1;
  }
  gpus = std::min(gpus, kMainGpuLimit);
  const double spent = static_cast<double>(spent_nano_) / 1e9;

  testing::modal_pb::EnvironmentListItem main;
  main.set_name("main");
  main.set_environment_id("en-main");
  main.set_default_(true);
  main.set_max_concurrent_gpus(static_cast<int>(kMainGpuLimit));
  main.set_current_concurrent_tasks(static_cast<int>(tasks));
  main.set_current_concurrent_gpus(static_cast<int>(gpus));
  main.set_effective_cycle_spend_limit(5000);
  main.set_current_cycle_usage(3900 + 50 * spent);

  testing::modal_pb::EnvironmentListItem dev;
  const double dev_usage = std::min(49.5 + 0.05 * lived_s_, 52.0);
  dev.set_name("dev");
  dev.set_environment_id("en-dev");
  dev.set_max_concurrent_tasks(20);
  dev.set_current_concurrent_tasks(static_cast<int>(3 + 2 * std::sin(lived_s_ / 30)));
  dev.set_cycle_budget_dollars(50);
  dev.set_effective_cycle_spend_limit(50);
  dev.set_current_cycle_usage(dev_usage);
  dev.set_spend_limit_reached(dev_usage >= 50);
  modal_.set_environments({main, dev});
  environment_gpus_ = {{"main", gpus}, {"dev", 0}};
  environment_limit_reached_ = {{"main", 0}, {"dev", dev.spend_limit_reached() ? 1 : 0}};

  auto summary = [](std::int64_t deployed, std::int64_t ephemeral, std::int64_t volume,
                    std::int64_t notebook) {
    testing::modal_pb::EnvironmentBillingSummaryResponse out;
    out.set_metered_cost(usd(deployed + ephemeral + volume + notebook));
    auto& breakdown = *out.mutable_metered_cost_breakdown();
    breakdown["deployed"] = usd(deployed);
    breakdown["ephemeral"] = usd(ephemeral);
    breakdown["volume"] = usd(volume);
    breakdown["notebook"] = usd(notebook);
    return out;
  };
  const auto nano = [](double v) { return static_cast<std::int64_t>(std::llround(v * 1e9)); };
  modal_.set_environment_billing(
      "en-main", summary(nano(1200 + 40 * spent), nano(300 + 10 * spent), nano(12.5), 0));
  modal_.set_environment_billing("en-dev",
                                 summary(nano(20), nano(dev_usage - 25), nano(1.25), nano(3.75)));
}

void Simulator::warn_every_job() {
  for (const auto& [uid, j] : jobs_)
    warning_event(j, j.kind == "Pod" ? "BackOff" : "ModalJobRetrying");
}

void Simulator::restart_operator() {
  ++operator_restarts_;
  publish_operator_pod();
}

void Simulator::set_kubernetes_down(bool down) {
  kubernetes_down_ = down;
  if (down) {
    kube_.inject_failure(503, 1 << 30, "", 1);
    kube_.end_open_watches();
  } else {
    kube_.clear_failures();
  }
}

void Simulator::set_modal_down(bool down) {
  modal_down_ = down;
  for (const char* m : kModalMethods) {
    modal_.fail_next(m, down ? 1 << 30 : 0, grpc::StatusCode::UNAVAILABLE);
  }
}

std::string Simulator::telemetry(const std::string& uid, double now) const {
  auto it = jobs_.find(uid);
  if (it == jobs_.end() || it->second.started_at == 0) return {};
  const SimJob& j = it->second;
  // Counters carry their sample timestamp, so that a rate between two scrapes is exact.
  const double t_ms = std::floor(now * 1000);
  const double until = j.finished_at > 0 ? std::min(j.finished_at, t_ms / 1000) : t_ms / 1000;
  const double elapsed = std::max(0.0, until - j.started_at);
  std::string out =
      "# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).\n"
      "# TYPE DCGM_FI_DEV_GPU_UTIL gauge\n";
  for (std::size_t g = 0; g < j.gpu_util.size(); ++g) {
    out += "DCGM_FI_DEV_GPU_UTIL{gpu=\"" + std::to_string(g) + "\",modelName=\"" + j.gpu_type +
           "\"} " + std::to_string(static_cast<int>(std::lround(j.gpu_util[g] * 100))) + "\n";
  }
  char line[256];
  out += "# TYPE node_network_receive_bytes_total counter\n";
  std::snprintf(line, sizeof line,
                "node_network_receive_bytes_total{device=\"eth0\"} %.0f %.0f\n"
                "node_network_receive_bytes_total{device=\"lo\"} %.0f %.0f\n",
                std::floor(j.rx_bps * elapsed), t_ms, std::floor(5e6 * elapsed), t_ms);
  out += line;
  out += "# TYPE node_network_transmit_bytes_total counter\n";
  std::snprintf(line, sizeof line,
                "node_network_transmit_bytes_total{device=\"eth0\"} %.0f %.0f\n"
                "node_network_transmit_bytes_total{device=\"lo\"} %.0f %.0f\n",
                std::floor(j.tx_bps * elapsed), t_ms, std::floor(5e6 * elapsed), t_ms);
  out += line;
  return out;
}

std::map<std::string, std::string> Simulator::exporter_env() const {
  return {{"MODAL_SERVER_URL", modal_.address()},
          {"MODAL_TOKEN_ID", testing::FakeModalServer::kDefaultTokenId},
          {"MODAL_TOKEN_SECRET", testing::FakeModalServer::kDefaultTokenSecret},
          {"POD_NAME", kOperatorPod},
          {"POD_NAMESPACE", kOperatorNamespace}};
}

// The ground truth, in the exporter's terms (docs/metrics.md), for the world as it is now.
nlohmann::json Simulator::truth(double now) const {
  nlohmann::json t;
  auto& totals = t["jobs_total"] = nlohmann::json::object();
  for (const auto& [k, v] : jobs_total_) totals[k] = v;
  auto& active = t["jobs_active"] = nlohmann::json::object();
  auto& replicas = t["job_replicas"] = nlohmann::json::object();
  auto& cold = t["cold_starts"] = nlohmann::json::object();
  auto& hourly = t["cost_hourly"] = nlohmann::json::object();
  auto& daily = t["cost_daily"] = nlohmann::json::object();
  auto& app_cost = t["app_cost_daily"] = nlohmann::json::object();
  auto& gpu = t["gpu_utilization"] = nlohmann::json::object();
  auto& bandwidth = t["bandwidth_mbps"] = nlohmann::json::object();
  for (const auto& [uid, j] : jobs_) {
    const std::string key = j.namespace_name + "/" + j.name;
    active[j.gpu_type] = active.value(j.gpu_type, 0) + (j.active() ? 1 : 0);
    if (j.active()) replicas[key] = j.replicas;
    // Until a job is deleted, its Modal-side series stay (the app and its bill still exist).
    if (!j.app_id.empty()) cold[key] = j.tasks.size();
    if (!j.app_id.empty()) {
      daily[key] = static_cast<double>(j.billed_nano) / 1e9;
      for (const auto& [resource, nano] : j.billed_by_resource) {
        app_cost[j.app_id + "|" + resource] = static_cast<double>(nano) / 1e9;
      }
    }
    if (j.phase != "Running") continue;
    hourly[key] = hourly_cost(j);
    if (!j.gpu_util.empty()) {
      double sum = 0;
      for (double u : j.gpu_util) sum += std::lround(u * 100) / 100.0;
      gpu[key] = sum / static_cast<double>(j.gpu_util.size());
    }
    bandwidth[key + "/ingress"] = j.rx_bps * 8 / 1e6;
    bandwidth[key + "/egress"] = j.tx_bps * 8 / 1e6;
  }
  t["i6pn_total"] = i6pn_total_;
  t["webhook"] = nlohmann::json::object();
  if (webhook_mutated_ > 0) t["webhook"]["CREATE/mutated"] = webhook_mutated_;
  for (const auto& [name, histogram] : {std::pair{"duration", &durations_}, {"queue", &queues_}}) {
    auto& count = t[std::string(name) + "_count"] = nlohmann::json::object();
    auto& sum = t[std::string(name) + "_sum"] = nlohmann::json::object();
    for (const auto& [key, observed] : *histogram) {
      count[key] = observed.first;
      sum[key] = observed.second;
    }
  }
  t["environment_gpus"] = environment_gpus_;
  t["environment_spend_limit_reached"] = environment_limit_reached_;
  t["operator_restarts"] = operator_restarts_;
  t["operator_errors"] = errors_by_reason_;
  t["time"] = now;
  t["paused"] = paused_;
  t["kubernetes_down"] = kubernetes_down_;
  t["modal_down"] = modal_down_;
  return t;
}

}  // namespace mx::sim
