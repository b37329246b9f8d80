#include "bench_world.h"

#include <cstdio>
#include <fstream>
#include <iterator>
#include <sstream>

namespace mx::bench {

using nlohmann::json;

std::string iso_utc(std::time_t t) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return buf;
}

std::string uid_of(const Job& j) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "b3e1c0de-0000-4000-8000-%012llu",
                static_cast<unsigned long long>(j.id));
  return buf;
}

std::string modal_id_of(const Job& j) {
  const std::string uid = uid_of(j);
  return uid.substr(uid.size() - 10);
}

int gpu_count(const Job& j) {
  if (!j.gpu->spec) return 0;
  const std::string spec = j.gpu->spec;
  const auto colon = spec.find(':');
  return colon == std::string::npos ? 1 : std::stoi(spec.substr(colon + 1));
}

json to_object(const Job& j) {
  const std::string uid = uid_of(j);
  const std::string short_id = uid.substr(uid.size() - 10);
  json annotations = {
      {"kubectl.kubernetes.io/last-applied-configuration",
       R"({"apiVersion":"modal-operator.io/v1alpha1","kind":"ModalJob","metadata":{"name":")" +
           j.name + R"("}})"}};
  if (!j.telemetry_url.empty()) annotations["modal-operator.io/telemetry-url"] = j.telemetry_url;
  json conditions = json::array({{{"type", "Submitted"},
                                  {"status", "True"},
                                  {"lastTransitionTime", iso_utc(j.created_at) + "Z"},
                                  {"reason", "AppCreated"},
                                  {"message", "Modal app created"}}});
  if (j.started_at) {
    conditions.push_back({{"type", "Running"},
                          {"status", j.finished_at ? "False" : "True"},
                          {"lastTransitionTime", iso_utc(j.started_at) + "Z"},
                          {"reason", "TasksRunning"},
                          {"message", "all replicas are running"}});
  }
  if (j.finished_at) {
    const bool ok = j.phase == "Succeeded";
    conditions.push_back({{"type", ok ? "Completed" : "Failed"},
                          {"status", "True"},
                          {"lastTransitionTime", iso_utc(j.finished_at) + "Z"},
                          {"reason", ok ? "AppStopped" : "TaskFailed"},
                          {"message", ok ? "all replicas finished" : "a replica exited with 1"}});
  }
  return {{"apiVersion", kGroupVersion},
          {"kind", "ModalJob"},
          {"metadata",
           {{"name", j.name},
            {"namespace", j.namespace_name},
            {"uid", uid},
            {"generation", 1},
            {"labels", {{"app.kubernetes.io/part-of", "training"}, {"team", j.namespace_name}}},
            {"annotations", annotations}}},
          {"spec",
           {{"image", "ghcr.io/example/trainer:2024.10"},
            {"command", {"python", "-m", "trainer"}},
            {"args", {"--epochs", "10", "--checkpoint-dir", "/vol/checkpoints"}},
            {"cpu", std::to_string(j.cpu)},
            {"memory", std::to_string(j.memory_gib) + "Gi"},
            {"gpu", j.gpu->spec ? json(j.gpu->spec) : json(nullptr)},
            {"env", {{"WANDB_PROJECT", "bench"}, {"HF_HOME", "/vol/hf"}}},
            {"timeout", 86400},
            {"retries", 2},
            {"replicas", j.replicas},
            {"enable_i6pn", j.i6pn}}},
          {"status",
           {{"phase", j.phase},
            {"modal_app_id", "ap-" + short_id},
            {"modal_function_id", "fu-" + short_id},
            {"tunnel_url", nullptr},
            {"log_url", "https://modal.com/apps/bench/main/ap-" + short_id},
            {"created_at", iso_utc(j.created_at)},
            {"started_at", j.started_at ? json(iso_utc(j.started_at)) : json(nullptr)},
            {"finished_at", j.finished_at ? json(iso_utc(j.finished_at)) : json(nullptr)},
            {"conditions", conditions}}}};
}

ProcSample sample_process(int pid) {
  ProcSample s;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  if (const auto paren = text.rfind(')'); paren != std::string::npos) {
    std::istringstream fields(text.substr(paren + 2));
    std::vector<std::string> f;
    for (std::string v; fields >> v;) f.push_back(v);
    // After the command name: state is field 3 of stat(5), utime 14 and stime 15.
    if (f.size() > 12) s.cpu_ticks = std::stoll(f[11]) + std::stoll(f[12]);
  }
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.starts_with("VmRSS:")) s.rss_kb = std::stoll(line.substr(6));
    if (line.starts_with("VmHWM:")) s.hwm_kb = std::stoll(line.substr(6));
  }
  return s;
}

#ifdef MX_BENCH_WITH_MODAL
namespace pb = ::modal::client;

namespace {

pb::WorkspaceBillingReportItem billing_item(const std::string& id, std::time_t interval,
                                            const char* cost, const std::string& resource) {
  pb::WorkspaceBillingReportItem row;
  row.set_object_id("ap-" + id);
  row.mutable_interval()->set_seconds(interval);
  row.set_cost(cost);
  (*row.mutable_cost_by_resource())[resource] = cost;
  return row;
}

template <typename Rows>
std::vector<pb::WorkspaceBillingReportItem> flatten(const Rows& rows) {
  std::vector<pb::WorkspaceBillingReportItem> out;
  for (const auto& [id, list] : rows) out.insert(out.end(), list.begin(), list.end());
  return out;
}

}  // namespace

ModalWorld::ModalWorld() {
  server_.set_rates({{"cpu", "0.0473"},
                     {"memory", "0.008"},
                     {"T4", "0.59"},
                     {"L4", "0.8"},
                     {"A10G", "1.1"},
                     {"A100-80GB", "2.5"},
                     {"H100", "3.95"}});
}

void ModalWorld::add(const Job& j) {
  const std::string id = modal_id_of(j);
  server_.add_job(id, static_cast<unsigned>(j.id % 5));
  pb::AppListResponse::AppListItem app;
  app.set_app_id("ap-" + id);
  app.set_name(j.name);
  app.set_description(j.namespace_name + "/" + j.name);
  app.set_state(pb::APP_STATE_DEPLOYED);
  app.set_created_at(static_cast<double>(j.created_at));
  app.set_n_running_tasks(1);
  apps_[id] = std::move(app);
  const std::time_t now = std::time(nullptr);
  const std::string resource = j.gpu->spec ? j.gpu->type : "cpu";
  daily_[id] = {billing_item(id, now - now % 86400, "1.25", resource)};
  auto& hourly = hourly_[id];
  hourly.clear();
  for (int h = 2; h >= 1; --h) {
    hourly.push_back(billing_item(id, now - now % 3600 - h * 3600, "0.05", resource));
  }
  dirty_ = true;
}

void ModalWorld::remove(const Job& j) {
  const std::string id = modal_id_of(j);
  server_.set_tasks("ap-" + id, {});
  apps_.erase(id);
  daily_.erase(id);
  hourly_.erase(id);
  dirty_ = true;
}

void ModalWorld::flush(bool now) {
  const auto t = std::chrono::steady_clock::now();
  if (!dirty_ || (!now && t - flushed_ < std::chrono::seconds(1))) return;
  std::vector<pb::AppListResponse::AppListItem> apps;
  apps.reserve(apps_.size());
  for (const auto& [id, app] : apps_) apps.push_back(app);
  server_.set_apps(std::move(apps));
  server_.set_billing_items("d", flatten(daily_));
  server_.set_billing_items("h", flatten(hourly_));
  dirty_ = false;
  flushed_ = t;
}
#endif

}  // namespace mx::bench
