// The modal_environment_* families from the model: every field to its series, unset optional
// fields and refused summaries to absent series, environments that go away, unchanged answers
// that publish nothing, and shard 0 alone showing them.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "metrics/derivation.h"
#include "model/model.h"

namespace mx {
namespace {

ModalEnvironment full_environment() {
  ModalEnvironment e;
  e.name = "main";
  e.environment_id = "en-main";
  e.is_default = true;
  e.managed = false;
  e.max_concurrent_tasks = 100;
  e.max_concurrent_gpus = 8;
  e.concurrent_tasks = 12;
  e.concurrent_gpus = 7;
  e.cycle_budget_usd = 400;
  e.cycle_spend_limit_usd = 500.5;
  e.cycle_spend_usd = 123.25;
  e.spend_limit_reached = true;
  return e;
}

// No limit, no budget: every optional field unset.
ModalEnvironment bare_environment() {
  ModalEnvironment e;
  e.name = "dev";
  e.environment_id = "en-dev";
  e.managed = true;
  e.concurrent_tasks = 3;
  e.concurrent_gpus = 0;
  e.cycle_spend_limit_usd = 50;
  e.cycle_spend_usd = 0;
  return e;
}

EnvironmentCost month_cost() {
  EnvironmentCost cost;
  cost.total = 12000000001;  // 12.000000001 USD
  cost.by_category = {
      {"deployed", 10000000000}, {"ephemeral", 2000000001}, {"volume", 0}, {"notebook", 0}};
  return cost;
}

class EnvironmentFamiliesTest : public ::testing::Test {
 protected:
  EnvironmentFamiliesTest() : model_(Config{}), derivation_(set_) {}

  std::string render() {
    derivation_.update(model_);
    return set_.publish(1)->body(ExpositionFormat::text);
  }

  static bool has(const std::string& text, const std::string& line) {
    return text.find(line + "\n") != std::string::npos;
  }
  static int lines_of(const std::string& text, const std::string& family) {
    int n = 0;
    for (std::size_t at = text.find("\n" + family + "{"); at != std::string::npos;
         at = text.find("\n" + family + "{", at + 1)) {
      ++n;
    }
    return n;
  }

  Model model_;
  FamilySet set_;
  Derivation derivation_;
};

TEST_F(EnvironmentFamiliesTest, EveryFieldMapsToItsSeries) {
  model_.modal_environments({full_environment()});
  model_.modal_environment_cost("en-main", month_cost());
  const auto text = render();
  for (
      const char* line : {
          R"(modal_environment_info{environment="main",environment_id="en-main",default="true",managed="false"} 1)",
          R"(modal_environment_concurrent_tasks{environment="main"} 12)",
          R"(modal_environment_concurrent_tasks_limit{environment="main"} 100)",
          R"(modal_environment_concurrent_gpus{environment="main"} 7)",
          R"(modal_environment_concurrent_gpus_limit{environment="main"} 8)",
          R"(modal_environment_cycle_budget_usd{environment="main"} 400)",
          R"(modal_environment_cycle_spend_limit_usd{environment="main"} 500.5)",
          R"(modal_environment_cycle_spend_usd{environment="main"} 123.25)",
          R"(modal_environment_spend_limit_reached{environment="main"} 1)",
          R"(modal_environment_metered_cost_usd{environment="main",category="all"} 12.000000001)",
          R"(modal_environment_metered_cost_usd{environment="main",category="deployed"} 10)",
          R"(modal_environment_metered_cost_usd{environment="main",category="ephemeral"} 2.000000001)",
          R"(modal_environment_metered_cost_usd{environment="main",category="volume"} 0)",
          R"(modal_environment_metered_cost_usd{environment="main",category="notebook"} 0)",
      }) {
    EXPECT_TRUE(has(text, line)) << line << "\n" << text;
  }
  EXPECT_NE(text.find("# TYPE modal_environment_info gauge"), std::string::npos);
}

TEST_F(EnvironmentFamiliesTest, UnsetOptionalFieldsAndNoSummaryGiveNoSeries) {
  model_.modal_environments({bare_environment()});
  const auto text = render();
  EXPECT_TRUE(has(
      text,
      R"(modal_environment_info{environment="dev",environment_id="en-dev",default="false",managed="true"} 1)"))
      << text;
  EXPECT_TRUE(has(text, R"(modal_environment_concurrent_gpus{environment="dev"} 0)")) << text;
  EXPECT_TRUE(has(text, R"(modal_environment_spend_limit_reached{environment="dev"} 0)")) << text;
  EXPECT_TRUE(has(text, R"(modal_environment_cycle_spend_usd{environment="dev"} 0)")) << text;
  for (const char* family :
       {"modal_environment_concurrent_tasks_limit", "modal_environment_concurrent_gpus_limit",
        "modal_environment_cycle_budget_usd", "modal_environment_metered_cost_usd"}) {
    EXPECT_EQ(text.find(family), std::string::npos) << family << "\n" << text;
  }
}

TEST_F(EnvironmentFamiliesTest, ARefusedSummaryRemovesTheCost) {
  model_.modal_environments({full_environment()});
  model_.modal_environment_cost("en-main", month_cost());
  ASSERT_EQ(lines_of(render(), "modal_environment_metered_cost_usd"), 5);
  model_.modal_environment_cost("en-main", std::nullopt);
  const auto text = render();
  EXPECT_EQ(text.find("modal_environment_metered_cost_usd"), std::string::npos) << text;
  EXPECT_TRUE(has(text, R"(modal_environment_concurrent_gpus{environment="main"} 7)")) << text;
}

TEST_F(EnvironmentFamiliesTest, AnEnvironmentThatGoesAwayTakesItsSeries) {
  model_.modal_environments({full_environment(), bare_environment()});
  model_.modal_environment_cost("en-main", month_cost());
  auto text = render();
  ASSERT_EQ(lines_of(text, "modal_environment_info"), 2) << text;
  model_.modal_environments({bare_environment()});
  text = render();
  EXPECT_EQ(text.find(R"(environment="main")"), std::string::npos) << text;
  EXPECT_EQ(lines_of(text, "modal_environment_info"), 1) << text;
  // Back again: the cost is asked anew, not carried over.
  model_.modal_environments({full_environment(), bare_environment()});
  text = render();
  EXPECT_EQ(text.find("modal_environment_metered_cost_usd"), std::string::npos) << text;
}

// Every round hands over the whole list; most rounds repeat the last one.
TEST_F(EnvironmentFamiliesTest, EqualAnswersPublishNothing) {
  model_.modal_environments({full_environment(), bare_environment()});
  model_.modal_environment_cost("en-main", month_cost());
  render();
  int changes = 0;
  model_.set_on_change([&](Model::Urgency) { ++changes; });
  model_.modal_environments({full_environment(), bare_environment()});
  model_.modal_environment_cost("en-main", month_cost());
  model_.modal_environment_cost("en-unknown", month_cost());
  EXPECT_EQ(changes, 0);
  derivation_.update(model_);
  EXPECT_FALSE(set_.has_changes());

  auto moved = full_environment();
  moved.concurrent_gpus = 8;
  model_.modal_environments({moved, bare_environment()});
  EXPECT_EQ(changes, 1);
  EXPECT_TRUE(has(render(), R"(modal_environment_concurrent_gpus{environment="main"} 8)"));
}

TEST_F(EnvironmentFamiliesTest, OnlyShardZeroShowsThem) {
  Config config;
  config.shard.total_shards = 3;
  config.shard.shard = 1;
  Model other(config);
  EXPECT_FALSE(other.exports_environments());
  other.modal_environments({full_environment()});
  other.modal_environment_cost("en-main", month_cost());
  EXPECT_TRUE(other.environments().empty());
  FamilySet set;
  Derivation derivation(set);
  derivation.update(other);
  EXPECT_EQ(set.publish(1)->body(ExpositionFormat::text).find("modal_environment"),
            std::string::npos);

  config.shard.shard = 0;
  Model first(config);
  EXPECT_TRUE(first.exports_environments());
  first.modal_environments({full_environment()});
  EXPECT_EQ(first.environments().size(), 1u);
}

}  // namespace
}  // namespace mx
