// replace_file_durably: the new content replaces the old whole, and a write that fails part-way
// (here: the file-size limit, as a full disk would) leaves the old file exactly as it was.
#include "common/durable_file.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "model/count_history.h"
#include "model/state_file.h"
#include "model/warning_events.h"

namespace mx {
namespace {

namespace fs = std::filesystem;

std::string read(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class DurableFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("mx-durable-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Runs `write` in a child whose files may not grow past `limit` bytes (writes beyond fail with
  // EFBIG, like a full disk); returns the child's exit code.
  template <typename F>
  int with_file_size_limit(rlim_t limit, F write) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      std::signal(SIGXFSZ, SIG_IGN);
      rlimit rl{limit, limit};
      if (::setrlimit(RLIMIT_FSIZE, &rl) != 0) ::_exit(3);
      ::_exit(write() ? 0 : 1);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  fs::path dir_;
};

TEST_F(DurableFileTest, ReplacesTheContentWholeAndLeavesNoTemporaryFile) {
  const auto path = (dir_ / "state.json").string();
  std::string error;
  ASSERT_TRUE(replace_file_durably(path, "first", error)) << error;
  ASSERT_TRUE(replace_file_durably(path, "second, longer", error)) << error;
  EXPECT_EQ(read(path), "second, longer");
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST_F(DurableFileTest, AWriteThatFailsPartWayLeavesTheOldFile) {
  const auto path = (dir_ / "state.json").string();
  std::string error;
  ASSERT_TRUE(replace_file_durably(path, "the old state", error)) << error;
  const std::string big(64 * 1024, 'x');
  EXPECT_EQ(with_file_size_limit(4096,
                                 [&] {
                                   std::string e;
                                   return replace_file_durably(path, big, e);
                                 }),
            1);
  EXPECT_EQ(read(path), "the old state");
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST_F(DurableFileTest, ASaveOfTheStateThatCannotBeWrittenKeepsThePreviousState) {
  const auto path = (dir_ / "state.json").string();
  CountHistory history;
  WarningEvents events;
  auto known = [](const std::string&) { return false; };
  auto warning = [](int i) {
    WarningEvent e;
    e.uid = "event-uid-" + std::to_string(i);
    e.namespace_name = "jobs";
    e.reason = "FailedScheduling";
    e.count = i + 1;
    e.about_pod = false;
    return e;
  };
  events.observe(warning(0), known);
  ASSERT_TRUE(StateFile::save(path, history, events));
  const std::string before = read(path);
  for (int i = 0; i < 2000; ++i) {
    events.observe(warning(i + 1), known);
  }
  EXPECT_EQ(with_file_size_limit(before.size() + 16,
                                 [&] { return StateFile::save(path, history, events); }),
            1);
  EXPECT_EQ(read(path), before);
  CountHistory restored_history;
  WarningEvents restored_events;
  EXPECT_TRUE(StateFile::load(path, restored_history, restored_events));
  EXPECT_EQ(restored_events.tracked(), 1u);
}

TEST_F(DurableFileTest, AMissingDirectoryIsAnErrorThatNamesThePath) {
  const auto path = (dir_ / "no-such-dir" / "state.json").string();
  std::string error;
  EXPECT_FALSE(replace_file_durably(path, "x", error));
  EXPECT_NE(error.find(path + ".tmp"), std::string::npos) << error;
}

}  // namespace
}  // namespace mx
