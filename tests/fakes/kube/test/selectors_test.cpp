#include "selectors.h"

#include <stdexcept>

#include <gtest/gtest.h>

namespace mx::testing::kube {
namespace {

using nlohmann::json;

json with_labels(json labels) {
  return {{"metadata", {{"labels", std::move(labels)}}}};
}

TEST(LabelSelector, EqualityExistenceAndSets) {
  json web = with_labels({{"app", "web"}, {"tier", "front"}});
  json bare = json::object();
  EXPECT_TRUE(LabelSelector::parse("").matches(bare));
  EXPECT_TRUE(LabelSelector::parse("app=web").matches(web));
  EXPECT_TRUE(LabelSelector::parse("app==web").matches(web));
  EXPECT_FALSE(LabelSelector::parse("app=db").matches(web));
  EXPECT_TRUE(LabelSelector::parse("app!=db").matches(web));
  EXPECT_TRUE(LabelSelector::parse("app!=db").matches(bare));  // missing label is "not db"
  EXPECT_TRUE(LabelSelector::parse("tier").matches(web));
  EXPECT_FALSE(LabelSelector::parse("tier").matches(bare));
  EXPECT_TRUE(LabelSelector::parse("!tier").matches(bare));
  EXPECT_TRUE(LabelSelector::parse("app in (db, web),tier").matches(web));
  EXPECT_FALSE(LabelSelector::parse("app notin (web)").matches(web));
  EXPECT_FALSE(LabelSelector::parse("app=web,tier=back").matches(web));
  EXPECT_TRUE(LabelSelector::parse("modal-operator.io/offload=true")
                  .matches(with_labels({{"modal-operator.io/offload", "true"}})));
}

TEST(LabelSelector, RejectsMalformedInputWithTheTerm) {
  for (const char* bad : {"a=b,", "=x", "a in (x", "a foo (x)", "a=b c", "a b"}) {
    try {
      LabelSelector::parse(bad);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find('"'), std::string::npos) << e.what();
    }
  }
}

TEST(FieldSelector, MatchesDottedPaths) {
  json event = {{"type", "Warning"},
                {"metadata", {{"name", "x"}, {"namespace", "ns"}}},
                {"count", 3},
                {"involvedObject", {{"kind", "ModalJob"}}}};
  EXPECT_TRUE(FieldSelector::parse("type=Warning").matches(event));
  EXPECT_FALSE(FieldSelector::parse("type!=Warning").matches(event));
  EXPECT_TRUE(FieldSelector::parse("metadata.name=x,metadata.namespace==ns").matches(event));
  EXPECT_TRUE(FieldSelector::parse("involvedObject.kind=ModalJob").matches(event));
  EXPECT_TRUE(FieldSelector::parse("count=3").matches(event));
  EXPECT_TRUE(FieldSelector::parse("status.phase=").matches(event));  // missing compares as ""
  EXPECT_THROW(FieldSelector::parse("type"), std::invalid_argument);
  EXPECT_THROW(FieldSelector::parse("a..b=c"), std::invalid_argument);
}

}  // namespace
}  // namespace mx::testing::kube
