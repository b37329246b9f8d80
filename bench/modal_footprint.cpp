// The Modal source's call footprint: how many calls of each method it makes per minute against
// the in-process fake Modal server, with N running jobs (each its own app, task and function),
// three Modal environments, and the default intervals and call budget. It measures; it asserts
// nothing.
//   bench_modal_footprint [JOBS...]     (default: 100 1000 10000; two minutes per count)
// Prints one line per minute:
//   FOOTPRINT jobs=N first_minute_total=T AppList=.. AuthTokenGet=.. ...
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "common/log.h"
#include "fake_modal_server.h"
#include "sources/modal/modal_source.h"

namespace {

using namespace std::chrono_literals;
using mx::testing::FakeModalServer;

// Hands the source the jobs' ids and drops what it reports.
class JobsSink : public mx::ModalSink, public mx::SourceHealth {
 public:
  void count_error(std::string_view, std::string_view) override {}
  void source_succeeded(std::string_view, double) override {}
  void source_failed(std::string_view) override {}
  void modal_apps(std::vector<mx::ModalApp>) override {}
  void modal_tasks(const std::string&, std::vector<mx::ModalTask>) override {}
  void modal_task_info(mx::ModalTaskInfo) override {}
  void modal_function_stats(mx::ModalFunctionStats) override {}
  void modal_billing(mx::BillingReport) override {}
  void modal_rates(mx::BillingRates) override {}
  void modal_environments(std::vector<mx::ModalEnvironment>) override {}
  void modal_environment_cost(const std::string&, std::optional<mx::EnvironmentCost>) override {}
  std::vector<std::string> active_job_app_ids() const override { return apps; }
  std::vector<std::string> known_job_app_ids() const override { return apps; }
  std::vector<std::string> job_function_ids() const override { return functions; }

  std::vector<std::string> apps;
  std::vector<std::string> functions;
};

// Three Modal environments, each with its month-to-date summary.
void add_environments(FakeModalServer& fake) {
  std::vector<mx::testing::modal_pb::EnvironmentListItem> items;
  for (const char* name : {"main", "dev", "staging"}) {
    mx::testing::modal_pb::EnvironmentListItem item;
    item.set_name(name);
    item.set_environment_id(std::string("en-") + name);
    item.set_max_concurrent_gpus(16);
    items.push_back(item);
    mx::testing::modal_pb::EnvironmentBillingSummaryResponse summary;
    summary.set_metered_cost("12.5");
    fake.set_environment_billing(item.environment_id(), summary);
  }
  fake.set_environments(items);
}

void add_jobs(int n, FakeModalServer& fake, JobsSink& sink) {
  for (int i = 0; i < n; ++i) {
    const std::string id = std::to_string(i);
    sink.apps.push_back("ap-" + id);
    sink.functions.push_back("fu-" + id);
    fake.add_job(id, static_cast<unsigned>(i % 7));
  }
}

void print_minute(int jobs, const char* which, const FakeModalServer& fake) {
  int total = 0;
  std::string line;
  for (const auto& [method, n] : fake.call_counts()) {
    total += n;
    line += " " + method + "=" + std::to_string(n);
  }
  std::printf("FOOTPRINT jobs=%d %s_minute_total=%d%s\n", jobs, which, total, line.c_str());
  std::fflush(stdout);
}

void measure(int jobs, const std::filesystem::path& dir) {
  FakeModalServer fake;
  JobsSink sink;
  add_jobs(jobs, fake, sink);
  add_environments(fake);
  mx::ModalConfig config;  // the defaults, but for the server and the credentials
  config.server_url = fake.address();
  config.token_id_file = (dir / "token-id").string();
  config.token_secret_file = (dir / "token-secret").string();
  std::ofstream(config.token_id_file) << FakeModalServer::kDefaultTokenId << "\n";
  std::ofstream(config.token_secret_file) << FakeModalServer::kDefaultTokenSecret << "\n";

  boost::asio::io_context io;
  auto guard = boost::asio::make_work_guard(io);
  mx::ModalSource source(io, config, mx::BackoffConfig{}, sink, sink);
  source.start();
  io.run_for(60s);
  print_minute(jobs, "first", fake);
  fake.clear_calls();
  io.run_for(60s);
  print_minute(jobs, "second", fake);
  source.stop();
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> counts;
  for (int i = 1; i < argc; ++i) counts.push_back(std::atoi(argv[i]));
  if (counts.empty()) counts = {100, 1000, 10000};
  mx::log::configure(mx::LogLevel::warn, mx::LogFormat::logfmt);
  const auto dir = std::filesystem::temp_directory_path() / "modal-footprint";
  std::filesystem::create_directories(dir);
  for (int jobs : counts) measure(jobs, dir);
  std::filesystem::remove_all(dir);
  return 0;
}
