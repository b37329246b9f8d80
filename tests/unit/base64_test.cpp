#include "common/base64.h"

#include <gtest/gtest.h>

namespace mx::base64 {
namespace {

TEST(Base64, EncodesBothAlphabets) {
  EXPECT_EQ(encode(""), "");
  EXPECT_EQ(encode("hello"), "aGVsbG8=");
  EXPECT_EQ(encode("hello!"), "aGVsbG8h");
  EXPECT_EQ(encode("\xfb\xff"), "+/8=");
  EXPECT_EQ(encode("\xfb\xff", Alphabet::url), "-_8");
}

TEST(Base64, DecodesPaddedUnpaddedWrappedAndUrl) {
  EXPECT_EQ(decode("aGVsbG8="), "hello");
  EXPECT_EQ(decode("aGVsbG8"), "hello");
  EXPECT_EQ(decode("aGVs\nbG8h"), "hello!");
  EXPECT_EQ(decode(" aGVs bG8h \r\n"), "hello!");
  EXPECT_EQ(decode("-_8"), "\xfb\xff");
  EXPECT_EQ(decode("+/8="), "\xfb\xff");
  EXPECT_EQ(decode(""), "");
}

TEST(Base64, RoundTripsEveryByte) {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  for (std::size_t len = 0; len <= all.size(); len += 37) {
    const auto part = all.substr(0, len);
    EXPECT_EQ(decode(encode(part)), part);
    EXPECT_EQ(decode(encode(part, Alphabet::url)), part);
  }
}

TEST(Base64, RejectsWhatIsNotBase64) {
  EXPECT_FALSE(decode("a*b"));
  EXPECT_FALSE(decode("aG=Vs"));  // data after padding
  EXPECT_FALSE(decode("aGVsb"));  // a dangling 6-bit group cannot encode a byte
  EXPECT_FALSE(decode("aGVsbG8\x01"));
}

}  // namespace
}  // namespace mx::base64
