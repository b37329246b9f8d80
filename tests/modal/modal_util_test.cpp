#include "sources/modal/modal_util.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

namespace mx {
namespace {

class CredentialsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    unsetenv("MODAL_TOKEN_ID");
    unsetenv("MODAL_TOKEN_SECRET");
    dir_ = std::filesystem::temp_directory_path() /
           ("modal-creds-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    unsetenv("MODAL_TOKEN_ID");
    unsetenv("MODAL_TOKEN_SECRET");
    std::filesystem::remove_all(dir_);
  }
  std::string write(const std::string& name, const std::string& content) {
    auto path = (dir_ / name).string();
    std::ofstream(path) << content;
    return path;
  }
  std::filesystem::path dir_;
};

TEST_F(CredentialsTest, MissingEnvironmentNamesTheVariable) {
  ModalConfig config;
  std::string error;
  EXPECT_FALSE(load_modal_credentials(config, &error));
  EXPECT_NE(error.find("MODAL_TOKEN_ID"), std::string::npos) << error;
  setenv("MODAL_TOKEN_ID", "ak-1", 1);
  EXPECT_FALSE(load_modal_credentials(config, &error));
  EXPECT_NE(error.find("MODAL_TOKEN_SECRET"), std::string::npos) << error;
}

TEST_F(CredentialsTest, EnvironmentIsUsedWithoutFiles) {
  setenv("MODAL_TOKEN_ID", "ak-1", 1);
  setenv("MODAL_TOKEN_SECRET", "as-very-secret", 1);
  ModalConfig config;
  std::string error;
  auto creds = load_modal_credentials(config, &error);
  ASSERT_TRUE(creds) << error;
  EXPECT_EQ(creds->token_id, "ak-1");
  EXPECT_EQ(creds->token_secret, "as-very-secret");
}

TEST_F(CredentialsTest, FilesWinAndAreTrimmed) {
  setenv("MODAL_TOKEN_ID", "from-env", 1);
  setenv("MODAL_TOKEN_SECRET", "from-env", 1);
  ModalConfig config;
  config.token_id_file = write("id", "ak-file\n");
  config.token_secret_file = write("secret", "  as-file-secret\r\n");
  std::string error;
  auto creds = load_modal_credentials(config, &error);
  ASSERT_TRUE(creds) << error;
  EXPECT_EQ(creds->token_id, "ak-file");
  EXPECT_EQ(creds->token_secret, "as-file-secret");
}

TEST_F(CredentialsTest, UnreadableEmptyOrBinaryFilesAreErrorsWithoutTheValue) {
  ModalConfig config;
  config.token_id_file = (dir_ / "missing").string();
  config.token_secret_file = write("secret", "as-secret-value");
  std::string error;
  EXPECT_FALSE(load_modal_credentials(config, &error));
  EXPECT_NE(error.find("token_id_file"), std::string::npos) << error;

  config.token_id_file = write("empty", "\n");
  EXPECT_FALSE(load_modal_credentials(config, &error));
  EXPECT_NE(error.find("empty"), std::string::npos) << error;

  config.token_id_file = write("id", "ak-ok");
  config.token_secret_file = write("binary", std::string("as-secret\x01value"));
  EXPECT_FALSE(load_modal_credentials(config, &error));
  EXPECT_EQ(error.find("as-secret"), std::string::npos) << error;
}

// base64url of {"exp":1900000000} and of {"sub":"x"}
TEST(JwtExpiry, ReadsExpClaim) {
  const std::string payload = "eyJleHAiOjE5MDAwMDAwMDB9";
  auto exp = jwt_expiry("eyJhbGciOiJIUzI1NiJ9." + payload + ".sig");
  ASSERT_TRUE(exp);
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::seconds>(exp->time_since_epoch()).count(),
            1900000000);
}

TEST(JwtExpiry, AbsentOrGarbageGivesNothing) {
  EXPECT_FALSE(jwt_expiry("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig"));  // no exp
  EXPECT_FALSE(jwt_expiry("not-a-jwt"));
  EXPECT_FALSE(jwt_expiry("a.b"));
  EXPECT_FALSE(jwt_expiry("a.!!!.c"));
  EXPECT_FALSE(jwt_expiry("a.bm90IGpzb24.c"));  // "not json"
  EXPECT_FALSE(jwt_expiry(""));
}

TEST(GrpcCodeName, LowerCaseNames) {
  EXPECT_EQ(grpc_code_name(14), "unavailable");
  EXPECT_EQ(grpc_code_name(4), "deadline_exceeded");
  EXPECT_EQ(grpc_code_name(8), "resource_exhausted");
  EXPECT_EQ(grpc_code_name(16), "unauthenticated");
  EXPECT_EQ(grpc_code_name(12), "unimplemented");
  EXPECT_EQ(grpc_code_name(99), "unknown");
}

TEST(MetadataValue, OnlyPrintableAscii) {
  EXPECT_TRUE(valid_metadata_value("ak-123 xyz"));
  EXPECT_FALSE(valid_metadata_value("a\nb"));
  EXPECT_FALSE(valid_metadata_value("caf\xc3\xa9"));
}

}  // namespace
}  // namespace mx
