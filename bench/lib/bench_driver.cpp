#include "bench_driver.h"

#include <algorithm>
#include <chrono>
#include <iostream>
#include <stdexcept>

namespace mx::bench {

using Clock = std::chrono::steady_clock;

Paced::Paced(std::function<void()> step) : step_(std::move(step)), thread_([this] { run(); }) {}

Paced::~Paced() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Paced::set_rate(double per_second) {
  {
    std::lock_guard lock(mu_);
    rate_ = per_second;
  }
  cv_.notify_all();
}

void Paced::run() {
  std::unique_lock lock(mu_);
  auto next = Clock::now();
  while (!stop_) {
    if (rate_ <= 0) {
      cv_.wait(lock, [&] { return stop_ || rate_ > 0; });
      next = Clock::now();
      continue;
    }
    next += std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(1.0 / rate_));
    if (next < Clock::now() - std::chrono::seconds(1)) next = Clock::now();
    if (cv_.wait_until(lock, next, [&] { return stop_; })) break;
    if (rate_ <= 0) continue;
    lock.unlock();
    step_();
    lock.lock();
  }
}

DriverArgs parse_driver_args(
    int argc, char** argv, std::uint64_t default_seed,
    const std::function<void(const std::string&, const std::string&)>& extra,
    const std::function<void(const std::string&)>& usage) {
  DriverArgs args;
  args.seed = default_seed;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--modal") {
      args.modal = true;
      continue;
    }
    if (i + 1 >= argc) {
      usage(arg + " needs a value");
      break;
    }
    const std::string value = argv[++i];
    try {
      if (arg == "--dir") {
        args.dir = value;
      } else if (arg == "--jobs") {
        args.jobs = std::stol(value);
      } else if (arg == "--seed") {
        args.seed = std::stoull(value);
      } else {
        extra(arg, value);
      }
    } catch (const std::logic_error&) {
      usage(arg + ": not a number: " + value);
    }
  }
  if (args.dir.empty() || args.jobs < 1) usage("--dir and a positive --jobs are required");
  return args;
}

void serve_commands(
    const std::function<std::string(const std::string&, std::istringstream&)>& answer) {
  for (std::string line; std::getline(std::cin, line);) {
    std::istringstream in(line);
    std::string command;
    in >> command;
    if (command == "quit") break;
    std::string out;
    try {
      out = answer(command, in);
    } catch (const std::exception& e) {
      out = std::string("error ") + e.what();
    }
    std::cout << out << std::endl;
  }
}

}  // namespace mx::bench
