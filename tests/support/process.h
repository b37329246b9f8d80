// Child processes for tests: spawn with stdout/stderr to files, signal, wait with a deadline.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace mx::testing {

inline std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Polls `condition` until it holds or `timeout` passes (a deadline, not a speed assertion).
inline bool wait_until(const std::function<bool()>& condition,
                       std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return condition();
}

class ChildProcess {
 public:
  ChildProcess(std::vector<std::string> argv, const std::string& output_path,
               std::vector<std::string> extra_env = {})
      : output_path_(output_path) {
    pid_ = ::fork();
    if (pid_ == 0) {
      const int fd = ::open(output_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      // Nothing else of the test's: an inherited listening socket (a fake server started
      // before) would keep its port bound and take its connections after the test closed it.
      if (::close_range(3, ~0U, 0) != 0) {
        for (long other = 3; other < ::sysconf(_SC_OPEN_MAX); ++other)
          ::close(static_cast<int>(other));
      }
      for (const auto& e : extra_env) ::putenv(const_cast<char*>(e.c_str()));
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
  }
  ~ChildProcess() {
    if (pid_ > 0 && !exit_code_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  void signal(int sig) { ::kill(pid_, sig); }
  pid_t pid() const { return pid_; }
  std::string output() const { return read_file(output_path_); }

  // Exit code, or nullopt when the process is still running after `timeout`.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    wait_until(
        [&] {
          if (exit_code_) return true;
          int status = 0;
          if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
          }
          return exit_code_.has_value();
        },
        timeout);
    return exit_code_;
  }

 private:
  pid_t pid_ = -1;
  std::string output_path_;
  std::optional<int> exit_code_;
};

// Runs a shell command, returns its exit code and combined output.
inline int run_command(const std::string& command, std::string& output) {
  output.clear();
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (!p) return -1;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) output.append(buf, n);
  const int status = ::pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace mx::testing
