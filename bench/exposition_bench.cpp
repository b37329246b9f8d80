// bench_exposition: the costs behind one snapshot and one scrape, at 1k and 10k jobs.
//   RenderAllJobs      derivation of every job + aggregates (startup, config reload, rates change)
//   Publish            a publish with nothing changed: assembling the next Snapshot's chunk lists
//   DeflateSnapshot    deflating the whole text body at once (what start-up pays, spread over
//                      the chunks; a later change re-compresses only its chunk)
//   RerenderOneJob     one job's telemetry changes: re-render its lines (+ publish: re-merge and
//                      re-compress its chunks)
//   ScrapeHandler      what the HTTP handler does per scrape without the network (plain / gzip)
//   SelfMetricsRender  the per-scrape self-metrics block (prometheus-cpp + /proc reads)
//   ModalTasksCall / ModalFunctionStatsCall  the model taking in one reply of the Modal pollers
//                      (TaskList per active app, FunctionGetCurrentStats per known function,
//                      each every 15 s by default): these run on the io_context thread too.
// Second argument of the render benchmarks: 1 = with Modal billing reports, 0 = without.
#include <benchmark/benchmark.h>

#include <chrono>
#include <map>
#include <memory>
#include <utility>

#include "common/log.h"
#include "exposition/gzip.h"
#include "exposition/snapshot_builder.h"
#include "http/routes.h"
#include "metrics/derivation.h"
#include "metrics/self_metrics.h"
#include "model/model.h"
#include "synthetic_model.h"

namespace {

double wall_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// One populated model with its rendered families; built once per (jobs, billing) and shared.
struct World {
  mx::Config config = mx::bench::synthetic_config();
  mx::SelfMetrics self{mx::current_build_info()};
  double now = wall_now();
  mx::Model model{config, [t = now] { return t; }};
  mx::FamilySet families;
  mx::Derivation derivation{families};
  mx::bench::SyntheticSummary summary;
  std::shared_ptr<const mx::Snapshot> snapshot;

  World(std::size_t jobs, bool billing) {
    mx::log::configure(mx::LogLevel::error, mx::LogFormat::logfmt);
    self.set_enabled_sources({"kubernetes", "modal", "telemetry"});
    for (const auto& source : self.enabled_sources()) self.source_succeeded(source, 0.1);
    mx::bench::SyntheticOptions options;
    options.jobs = jobs;
    options.billing = billing;
    summary = mx::bench::populate(model, options, now);
    derivation.update(model);
    snapshot = families.publish(config.web.gzip_level);
  }
};

World& world(std::size_t jobs, bool billing = true) {
  static std::map<std::pair<std::size_t, bool>, std::unique_ptr<World>> worlds;
  auto& w = worlds[{jobs, billing}];
  if (!w) w = std::make_unique<World>(jobs, billing);
  return *w;
}

void set_snapshot_counters(benchmark::State& state, const World& w) {
  state.counters["jobs"] = static_cast<double>(w.summary.uids.size());
  state.counters["text_bytes"] =
      static_cast<double>(w.snapshot->body(mx::ExpositionFormat::text).size());
}

void BM_RenderAllJobs(benchmark::State& state) {
  World& w = world(static_cast<std::size_t>(state.range(0)), state.range(1) != 0);
  for (auto _ : state) {
    state.PauseTiming();
    w.model.reconfigure(w.config);  // marks every job and the aggregates dirty
    state.ResumeTiming();
    w.derivation.update(w.model);
  }
  set_snapshot_counters(state, w);
  state.counters["jobs_per_s"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * static_cast<double>(w.summary.uids.size()),
      benchmark::Counter::kIsRate);
}
BENCHMARK(BM_RenderAllJobs)
    ->Args({1000, 1})
    ->Args({10000, 0})
    ->Args({10000, 1})
    ->Unit(benchmark::kMillisecond);

void BM_Publish(benchmark::State& state) {
  World& w = world(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) {
    auto s = w.families.publish(w.config.web.gzip_level);
    benchmark::DoNotOptimize(s);
  }
  set_snapshot_counters(state, w);
}
BENCHMARK(BM_Publish)->Arg(1000)->Arg(10000)->Unit(benchmark::kMillisecond);

void BM_DeflateSnapshot(benchmark::State& state) {
  World& w = world(static_cast<std::size_t>(state.range(0)));
  const std::string& text = w.snapshot->body(mx::ExpositionFormat::text);
  const int level = static_cast<int>(state.range(1));
  std::size_t compressed = 0;
  for (auto _ : state) {
    auto part = mx::deflate_part(text, level, false);
    compressed = part.bytes.size();
    benchmark::DoNotOptimize(part);
  }
  set_snapshot_counters(state, w);
  state.counters["deflated_bytes"] = static_cast<double>(compressed);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_DeflateSnapshot)
    ->Args({1000, 6})
    ->Args({10000, 1})
    ->Args({10000, 6})
    ->Unit(benchmark::kMillisecond);

// One job's telemetry changes (the most frequent change in a live cluster).
void rerender_one(benchmark::State& state, bool publish) {
  World& w = world(static_cast<std::size_t>(state.range(0)));
  std::size_t i = 0;
  for (auto _ : state) {
    const auto& uid = w.summary.running[i++ % w.summary.running.size()];
    w.model.job_telemetry({uid, 0.25 + 0.001 * static_cast<double>(i % 500), 10.0, 20.0});
    w.derivation.update(w.model);
    if (publish) benchmark::DoNotOptimize(w.families.publish(w.config.web.gzip_level));
  }
  set_snapshot_counters(state, w);
}
void BM_RerenderOneJob(benchmark::State& state) {
  rerender_one(state, false);
}
void BM_RerenderOneJobAndPublish(benchmark::State& state) {
  rerender_one(state, true);
}
BENCHMARK(BM_RerenderOneJob)->Arg(1000)->Arg(10000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_RerenderOneJobAndPublish)->Arg(1000)->Arg(10000)->Unit(benchmark::kMillisecond);

// The handler's per-scrape work; the snapshot's deflate is already done (steady state).
void BM_ScrapeHandler(benchmark::State& state) {
  World& w = world(static_cast<std::size_t>(state.range(0)));
  const bool gzip = state.range(1) != 0;
  mx::RouteContext routes;
  routes.snapshot = [&w] { return w.snapshot; };
  routes.self_metrics = [&w](mx::ExpositionFormat f) { return w.self.render(f); };
  routes.ready = [&w](std::string& why) { return w.self.ready(why); };
  auto handler = mx::make_exporter_handler(routes);
  mx::HttpRequest request{"GET", "/metrics", "", gzip ? "gzip" : ""};
  std::uint64_t body = 0;
  for (auto _ : state) {
    auto response = handler(request);
    body = response.body_size();
    benchmark::DoNotOptimize(response);
  }
  state.counters["body_bytes"] = static_cast<double>(body);
}
BENCHMARK(BM_ScrapeHandler)->Args({10000, 0})->Args({10000, 1})->Unit(benchmark::kMicrosecond);

void BM_SelfMetricsRender(benchmark::State& state) {
  World& w = world(1000);
  for (auto _ : state) benchmark::DoNotOptimize(w.self.render(mx::ExpositionFormat::text));
}
BENCHMARK(BM_SelfMetricsRender)->Unit(benchmark::kMicrosecond);

void BM_ModalTasksCall(benchmark::State& state) {
  World& w = world(static_cast<std::size_t>(state.range(0)));
  const auto apps = w.model.active_job_app_ids();
  std::size_t i = 0;
  for (auto _ : state) {
    const auto& app = apps[i++ % apps.size()];
    // The same task again: the call's cost is finding the app's jobs, not the new data.
    w.model.modal_tasks(app, {mx::ModalTask{"ta-bench", app, w.now - 60, w.now - 30}});
  }
  state.counters["calls_per_poll"] = static_cast<double>(apps.size());
  w.derivation.update(w.model);
}
BENCHMARK(BM_ModalTasksCall)->Arg(1000)->Arg(10000)->Unit(benchmark::kMicrosecond);

void BM_ModalFunctionStatsCall(benchmark::State& state) {
  World& w = world(static_cast<std::size_t>(state.range(0)));
  const auto functions = w.model.job_function_ids();
  std::size_t i = 0;
  for (auto _ : state) {
    mx::ModalFunctionStats stats;
    stats.function_id = functions[i++ % functions.size()];
    stats.backlog = static_cast<std::uint32_t>(i % 7);
    w.model.modal_function_stats(stats);
  }
  state.counters["calls_per_poll"] = static_cast<double>(functions.size());
  w.derivation.update(w.model);
}
BENCHMARK(BM_ModalFunctionStatsCall)->Arg(1000)->Arg(10000)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
