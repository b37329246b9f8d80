// What the benchmark drivers (bench_kube_load, bench_chaos) share besides their world: changes
// paced at a rate, their command line, and the one-line command protocol with the script that
// runs them.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace mx::bench {

// Calls `step` on its own thread up to `rate` times a second, evenly spaced. When it falls
// behind (a busy machine) it does not burst to catch up: the rate is a ceiling.
class Paced {
 public:
  explicit Paced(std::function<void()> step);
  ~Paced();
  Paced(const Paced&) = delete;
  Paced& operator=(const Paced&) = delete;
  void set_rate(double per_second);  // 0 stops

 private:
  void run();

  std::function<void()> step_;
  std::mutex mu_;
  std::condition_variable cv_;
  double rate_ = 0;
  bool stop_ = false;
  std::thread thread_;  // last: starts once the rest is initialised
};

// The flags every driver takes: --dir DIR, --jobs N, --seed S and --modal.
struct DriverArgs {
  std::string dir;
  long jobs = -1;
  std::uint64_t seed = 0;
  bool modal = false;
};

// Parses the common flags; every other "--name value" goes to `extra`, which calls `usage` for
// one it does not know. A std::logic_error from a conversion (std::stol and the like) is a value
// that is not a number.
DriverArgs parse_driver_args(
    int argc, char** argv, std::uint64_t default_seed,
    const std::function<void(const std::string& name, const std::string& value)>& extra,
    const std::function<void(const std::string& why)>& usage);

// One command per line on stdin until "quit" or end of input, each answered with one line on
// stdout: what `answer` returns, or "error <what>" for an exception it throws.
void serve_commands(
    const std::function<std::string(const std::string& command, std::istringstream& args)>& answer);

}  // namespace mx::bench
