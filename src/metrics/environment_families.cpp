#include "metrics/environment_families.h"

#include <map>
#include <optional>
#include <string>

#include "exposition/text_format.h"

namespace mx {
namespace {

using T = MetricType;
using Environment = Model::HeldEnvironment;

constexpr double kNanoPerUsd = 1e9;

std::string_view boolean(bool value) {
  return value ? "true" : "false";
}

// One family: its description and the samples one environment contributes.
struct EnvironmentFamily {
  FamilyDesc desc;
  void (*write)(const Environment& env, std::string& out, std::string_view name);
};

// A gauge of one optional value, labelled by the environment alone.
template <typename V>
void gauge(std::string& out, std::string_view name, const ModalEnvironment& env,
           const std::optional<V>& value) {
  if (value) append_sample(out, name, {{"environment", env.name}}, static_cast<double>(*value));
}

const std::vector<EnvironmentFamily>& families() {
  static const std::vector<EnvironmentFamily> table = {
      {{"modal_environment_info",
        "One per Modal environment (EnvironmentList), for joins; default and managed are "
        "\"true\" or \"false\".",
        T::gauge},
       [](const Environment& e, std::string& out, std::string_view name) {
         const auto& env = e.environment;
         append_sample(out, name,
                       {{"environment", env.name},
                        {"environment_id", env.environment_id},
                        {"default", boolean(env.is_default)},
                        {"managed", boolean(env.managed)}},
                       1);
       }},
      {{"modal_environment_concurrent_tasks", "Tasks running now in the Modal environment.",
        T::gauge},
       [](const Environment& e, std::string& out, std::string_view name) {
         gauge(out, name, e.environment, std::optional(e.environment.concurrent_tasks));
       }},
      {{"modal_environment_concurrent_tasks_limit",
        "The environment's limit on concurrent tasks; absent when it has none.", T::gauge},
       [](const Environment& e, std::string& out, std::string_view name) {
         gauge(out, name, e.environment, e.environment.max_concurrent_tasks);
       }},
      {{"modal_environment_concurrent_gpus", "GPUs in use now in the Modal environment.", T::gauge},
       [](const Environment& e, std::string& out, std::string_view name) {
         gauge(out, name, e.environment, std::optional(e.environment.concurrent_gpus));
       }},
      {{"modal_environment_concurrent_gpus_limit",
        "The environment's limit on concurrent GPUs; absent when it has none.", T::gauge},
       [](const Environment& e, std::string& out, std::string_view name) {
         gauge(out, name, e.environment, e.environment.max_concurrent_gpus);
       }},
      {{"modal_environment_cycle_budget_usd",
        "Budget of the billing cycle a workspace manager set for the environment; absent when "
        "none is set.",
        T::gauge},
       [](const Environment& e, std::string& out, std::string_view name) {
         gauge(out, name, e.environment, e.environment.cycle_budget_usd);
       }},
      {{"modal_environment_cycle_spend_limit_usd",
        "The spend limit Modal enforces on the environment in this billing cycle.", T::gauge},
       [](const Environment& e, std::string& out, std::string_view name) {
         gauge(out, name, e.environment, e.environment.cycle_spend_limit_usd);
       }},
      {{"modal_environment_cycle_spend_usd",
        "USD the environment used in the current billing cycle.", T::gauge},
       [](const Environment& e, std::string& out, std::string_view name) {
         gauge(out, name, e.environment, e.environment.cycle_spend_usd);
       }},
      {{"modal_environment_spend_limit_reached",
        "1 while the environment's spend limit is reached: Modal starts no new work in it.",
        T::gauge},
       [](const Environment& e, std::string& out, std::string_view name) {
         gauge(out, name, e.environment, std::optional(e.environment.spend_limit_reached ? 1 : 0));
       }},
      {{"modal_environment_metered_cost_usd",
        "Month-to-date metered USD of the environment by category (as Modal names them), and "
        "category=\"all\" in total; absent when Modal refuses the summary.",
        T::gauge},
       [](const Environment& e, std::string& out, std::string_view name) {
         if (!e.cost) return;
         std::map<std::string, NanoUsd> by_category = e.cost->by_category;
         if (e.cost->total) by_category["all"] = *e.cost->total;
         for (const auto& [category, usd] : by_category) {
           append_sample(out, name, {{"environment", e.environment.name}, {"category", category}},
                         static_cast<double>(usd) / kNanoPerUsd);
         }
       }},
  };
  return table;
}

}  // namespace

EnvironmentFamilies::EnvironmentFamilies(FamilySet& set) : set_(set) {
  for (const auto& family : families()) ids_.push_back(set.add_family(family.desc));
}

std::vector<FamilyDesc> EnvironmentFamilies::descs() {
  std::vector<FamilyDesc> out;
  for (const auto& family : families()) out.push_back(family.desc);
  return out;
}

void EnvironmentFamilies::render(const Model& model) {
  const auto& table = families();
  std::string out;
  for (std::size_t i = 0; i < table.size(); ++i) {
    for (const auto& [name, env] : model.environments())
      table[i].write(env, out, table[i].desc.name);
    set_.set(ids_[i], "", out);
    out.clear();
  }
}

}  // namespace mx
