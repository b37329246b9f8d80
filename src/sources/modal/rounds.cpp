#include "sources/modal/rounds.h"

#include <algorithm>
#include <cstdint>
#include <utility>

#include "common/log.h"

namespace mx::modal_client {
namespace {

using SteadyClock = std::chrono::steady_clock;
constexpr std::string_view kComponent = "modal_api";
constexpr std::string_view kSource = "modal";
// How often the watch looks for the first LIST to be in (Rounds::schedule_watch).
constexpr Duration kSettlingWatch = std::chrono::milliseconds(50);

std::vector<std::string> unique(std::vector<std::string> ids) {
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  ids.erase(std::remove(ids.begin(), ids.end(), std::string()), ids.end());
  return ids;
}

pb::Timestamp to_timestamp(std::int64_t unix_seconds) {
  pb::Timestamp ts;
  ts.set_seconds(unix_seconds);
  return ts;
}

// Billing window for one resolution, in unix seconds: from the start of the interval 30 days
// ("d") or 24 hours ("h") back to now. Modal bills complete intervals only; the model adds the
// running estimate for the rest (docs/modal.md).
std::pair<std::int64_t, std::int64_t> billing_window(const std::string& resolution) {
  const std::int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
  if (resolution == "d") {
    const std::int64_t midnight = now - now % 86400;
    return {midnight - (Rounds::kBillingDailyLookbackDays - 1) * std::int64_t{86400}, now};
  }
  const std::int64_t hour = now - now % 3600;
  return {hour - 24 * 3600, now};
}

}  // namespace

Rounds::Rounds(boost::asio::io_context& io, const ModalConfig& config, const BackoffConfig& backoff,
               ModalSink& sink, SourceHealth& health, Rpc& rpc, Budget& budget)
    : config_(config),
      backoff_config_(backoff),
      sink_(sink),
      health_(health),
      rpc_(rpc),
      budget_(budget),
      watch_timer_(io) {
  const std::pair<Kind, const char*> kinds[] = {{Kind::apps, "apps"},
                                                {Kind::tasks, "tasks"},
                                                {Kind::billing, "billing"},
                                                {Kind::rates, "rates"},
                                                {Kind::environments, "environments"},
                                                {Kind::environment_costs, "environment_costs"}};
  const Duration intervals[] = {config.apps_interval,         config.tasks_interval,
                                config.billing_interval,      config.rates_interval,
                                config.environments_interval, config.billing_interval};
  for (std::size_t i = 0; i < std::size(kinds); ++i) {
    pollers_.push_back(
        std::make_unique<Poller>(io, kinds[i].first, kinds[i].second, intervals[i], backoff));
  }
  const auto shortest =
      std::min({config.apps_interval, config.tasks_interval, config.stats_interval});
  watch_period_ =
      std::clamp<Duration>(shortest / 4, std::chrono::milliseconds(10), std::chrono::seconds(1));
}

void Rounds::start() {
  for (auto& p : pollers_) schedule(*p, Duration{0});
  schedule_watch(Duration{0});
}

void Rounds::stop() {
  for (auto& p : pollers_) p->timer.cancel();
  watch_timer_.cancel();
}

Rounds::Poller& Rounds::poller(Kind kind) {
  for (auto& p : pollers_) {
    if (p->kind == kind) return *p;
  }
  return *pollers_.front();
}

// Re-arming the timer cancels a pending wait, but not one that has already expired and sits in
// the io_context's queue (an early round asked for just as the interval ended). That wait would
// start a second round over the state of the first while its calls are out: the first call back
// would end the round, a tasks round would keep the budget's tasks from a partial list, and the
// other call's failure would be counted but never reported. Only the latest wait starts a round.
void Rounds::schedule(Poller& p, Duration delay) {
  const auto wait = ++p.waits;
  p.timer.expires_after(delay);
  p.timer.async_wait([this, life = rpc_.lifetime(), &p, wait](const boost::system::error_code& ec) {
    if (life->stopped || ec || wait != p.waits) return;
    run_round(p);
  });
}

void Rounds::run_round(Poller& p) {
  p.started = SteadyClock::now();
  p.running = true;
  p.queue.clear();
  p.in_flight = 0;
  p.abort = false;
  p.failure.reset();
  p.server_hint.reset();
  p.pace = Pace::go_on;
  p.started_settled = !sink_.job_ids_settling();
  queue_calls(p);
  if (p.queue.empty()) {  // nothing to ask about: no call, nothing to fail
    finish_round(p);
    return;
  }
  p.last_call = p.started;
  if (auto failure = rpc_.tokens().load_credentials()) {
    note_failure(p, *failure);
    finish_round(p);
    return;
  }
  pump(p);
}

bool Rounds::ask(Poller& p, const std::vector<std::string>& app_ids) {
  if (app_ids.empty()) return false;
  p.asked = IdKeys(app_ids);
  p.covered_version.reset();
  return true;
}

void Rounds::queue_calls(Poller& p) {
  switch (p.kind) {
    case Kind::apps:
      p.queue.push_back([this, &p] { app_list(p); });
      break;
    case Kind::tasks: {
      if (!p.started_settled) break;  // the watch starts it once the lists are complete
      auto apps = unique(sink_.active_job_app_ids());
      if (!ask(p, apps)) break;
      if (per_app_tasks_) {
        for (const auto& app_id : apps) {
          p.queue.push_back([this, &p, app_id] { task_list(p, app_id, {app_id}); });
        }
      } else {
        p.queue.push_back([this, &p, apps] { task_list(p, "", apps); });
      }
      break;
    }
    case Kind::billing: {
      if (!p.started_settled) break;
      auto app_ids = unique(sink_.known_job_app_ids());
      if (!ask(p, app_ids)) break;
      p.queue.push_back([this, &p, app_ids] { billing_report(p, "d", app_ids); });
      p.queue.push_back([this, &p, app_ids] { billing_report(p, "h", app_ids); });
      break;
    }
    case Kind::rates:
      p.queue.push_back([this, &p] { billing_rates(p); });
      break;
    case Kind::environments:
    case Kind::environment_costs:
      queue_environment_calls(p);
      break;
  }
}

// Starts queued calls up to the concurrency cap; ends the round when nothing is left.
// Completions always arrive through io_context posts, so this never re-enters itself.
void Rounds::pump(Poller& p) {
  while (!p.abort && p.in_flight < Budget::kMaxConcurrentCalls && !p.queue.empty()) {
    auto launch = std::move(p.queue.front());
    p.queue.pop_front();
    ++p.in_flight;
    launch();
  }
  if (p.in_flight == 0 && (p.abort || p.queue.empty())) finish_round(p);
}

// Every launched call ends here exactly once.
void Rounds::call_done(Poller& p, const Rpc::Result& result) {
  --p.in_flight;
  if (result) note_failure(p, *result);
  pump(p);
}

void Rounds::note_failure(Poller& p, const Failure& failure) {
  if (failure.kind == FailureKind::not_found && failure.method != "AppList") {
    log::debug("modal object not found", {{"method", failure.method}});
    return;
  }
  if (!p.failure) p.failure = failure;
  if (failure.retry_after) p.server_hint = failure.retry_after;
  p.pace = std::max(p.pace, failure.pace);
  if (failure.pace != Pace::go_on) p.abort = true;
}

void Rounds::finish_round(Poller& p) {
  p.running = false;
  if (p.started_settled) note_settled(p);
  p.last_failed = p.failure.has_value();
  const double seconds = std::chrono::duration<double>(SteadyClock::now() - p.started).count();
  if (!p.failure) {
    p.backoff.reset();
    if (p.kind == Kind::apps) health_.source_succeeded(kSource, seconds);
    schedule(p, p.interval);
    return;
  }
  health_.source_failed(kSource);
  Duration delay = p.interval;
  switch (p.pace) {
    case Pace::go_on:
      break;
    case Pace::back_off:
      delay = honour_hint(p.backoff.next(), p.server_hint);
      break;
    case Pace::wait_max:
      p.backoff.next();
      delay = honour_hint(backoff_config_.max, p.server_hint);
      break;
  }
  const auto& f = *p.failure;
  log::warn("modal poll failed", {{"poll", p.name},
                                  {"method", f.method},
                                  {"error_type", f.error_type},
                                  {"detail", f.detail},
                                  {"attempt", p.backoff.attempt()},
                                  {"retry_in", format_duration(delay)}});
  schedule(p, delay);
}

// --- start-up and new jobs: early rounds, the budget's function list --------------------------

void Rounds::schedule_watch(Duration delay) {
  watch_timer_.expires_after(delay);
  watch_timer_.async_wait([this, life = rpc_.lifetime()](const boost::system::error_code& ec) {
    if (life->stopped || ec) return;
    watch();
    // Until the first rounds over every job are in, the first snapshot waits for them: look
    // often, so that they start within moments of the first LIST.
    schedule_watch(first_rounds_reported_ ? watch_period_
                                          : std::min<Duration>(watch_period_, kSettlingWatch));
  });
}

// A tasks round (and a billing round, until the first rounds are in: Rounds::watch) runs early
// when the jobs bring app ids it has not asked about, it is not running or backing off, and its
// last call is at least tasks_interval ago.
void Rounds::maybe_run_early(Poller& p, const IdKeys& ids) {
  if (sink_.job_ids_settling() || !may_run_early(p, SteadyClock::now())) return;
  if (ids_version_ && p.covered_version == ids_version_) return;
  if (p.asked.covers(ids)) {
    p.covered_version = ids_version_;
    note_settled(p);  // every app there is was asked about, and the answers are in
    return;
  }
  log::debug("modal round started early for new apps", {{"poll", p.name}});
  schedule(p, Duration{0});
}

// The first snapshot waits for what Modal says of every job (ModalSink::modal_first_rounds_ended):
// a tasks round and a billing round with the job lists complete, or nothing left to ask.
void Rounds::note_settled(Poller& p) {
  p.ended_settled = true;
  if (first_rounds_reported_ || !poller(Kind::tasks).ended_settled ||
      !poller(Kind::billing).ended_settled) {
    return;
  }
  first_rounds_reported_ = true;
  sink_.modal_first_rounds_ended();
}

// Each watch runs every second or faster; with 10k jobs, reading the lists costs walks of every
// job, so they are read again only when the sink says they may have changed.
bool Rounds::refresh_ids() {
  const auto version = sink_.job_ids_version();
  if (ids_read_ && version && version == ids_version_) return false;
  ids_version_ = version;
  ids_read_ = true;
  active_apps_ = IdKeys(sink_.active_job_app_ids());
  known_apps_ = IdKeys(sink_.known_job_app_ids());
  return true;
}

void Rounds::watch() {
  // The first LIST is still coming in: the lists are partial, and reading them at every page
  // would walk every job again and again.
  if (sink_.job_ids_settling()) return;
  // Under churn the lists' version moves every second, and reading them walks every job (at
  // 10k jobs, read every second, a quarter of the exporter's CPU). They are read when an early
  // round may start now, and otherwise once per tasks_interval, for the budget's functions.
  const auto now = SteadyClock::now();
  const bool billing_early = !first_rounds_reported_;
  const bool due = may_run_early(poller(Kind::tasks), now) ||
                   (billing_early && may_run_early(poller(Kind::billing), now)) || !ids_read_at_ ||
                   now - *ids_read_at_ >= config_.tasks_interval;
  if (due) {
    const bool changed = refresh_ids();
    if (changed) ids_read_at_ = now;
    maybe_run_early(poller(Kind::tasks), active_apps_);
    // Billing runs early only for the first rounds: after that, a new job's app has no complete
    // billed interval yet (Modal bills whole hours), so an early report would bring nothing the
    // next regular round does not, and under churn it re-read the whole report (30k rows at 10k
    // jobs) every tasks_interval instead of every billing_interval.
    if (billing_early) maybe_run_early(poller(Kind::billing), known_apps_);
    if (changed) budget_.set_functions(unique(sink_.job_function_ids()));
  }
  // Few jobs wait for their tasks' finish time (most have it in their status): the list is
  // short and read when it moved.
  if (const auto version = sink_.ended_tasks_version(); version != ended_tasks_version_) {
    ended_tasks_version_ = version;
    budget_.want_task_info(sink_.ended_task_ids());
  }
  budget_.kick();
}

// The conditions of maybe_run_early that need no job list.
bool Rounds::may_run_early(const Poller& p, SteadyClock::time_point now) const {
  if (p.running || p.last_failed) return false;
  return !p.last_call || now - *p.last_call >= config_.tasks_interval;
}

// --- the calls ---------------------------------------------------------------------------------

void Rounds::app_list(Poller& p) {
  pb::AppListRequest request;
  request.set_environment_name(config_.environment);
  rpc_.unary("AppList", std::move(request), &Stub::PrepareAsyncAppList,
             [this, &p](pb::AppListResponse& response, const Rpc::Result& result) {
               if (!result) {
                 modal_convert::Issues issues;
                 auto apps = modal_convert::apps(response, issues);
                 report(issues, "AppList", "app without app_id skipped");
                 sink_.modal_apps(std::move(apps));
               }
               call_done(p, result);
             });
}

// app_id "": the environment-wide form, split by app; else one app.
void Rounds::task_list(Poller& p, const std::string& app_id, std::vector<std::string> want) {
  pb::TaskListRequest request;
  request.set_environment_name(config_.environment);
  request.set_app_id(app_id);
  rpc_.unary("TaskList", std::move(request), &Stub::PrepareAsyncTaskList,
             [this, &p, app_id, want](pb::TaskListResponse& response, const Rpc::Result& result) {
               if (result && app_id.empty() &&
                   (result->code == grpc::StatusCode::INVALID_ARGUMENT ||
                    result->code == grpc::StatusCode::FAILED_PRECONDITION)) {
                 // This server wants one app per TaskList: switch for good, and finish this round
                 // so.
                 per_app_tasks_ = true;
                 log::warn("modal TaskList refuses the environment-wide form; listing per app",
                           {{"error_type", result->error_type}, {"apps", want.size()}});
                 for (const auto& id : want) {
                   p.queue.push_back([this, &p, id] { task_list(p, id, {id}); });
                 }
                 call_done(p, std::nullopt);
                 return;
               }
               if (!result) {
                 modal_convert::Issues issues;
                 auto by_app = modal_convert::tasks_by_app(response, app_id, want, issues);
                 report(issues, "TaskList", "task without task id or app id skipped");
                 for (auto& [id, tasks] : by_app) sink_.modal_tasks(id, std::move(tasks));
               }
               call_done(p, result);
             });
}

void Rounds::billing_rates(Poller& p) {
  rpc_.unary(
      "WorkspaceBillingRates", pb::WorkspaceBillingRatesRequest{},
      &Stub::PrepareAsyncWorkspaceBillingRates,
      [this, &p](pb::WorkspaceBillingRatesResponse& response, const Rpc::Result& result) {
        if (!result) {
          modal_convert::Issues issues;
          auto converted = modal_convert::rates(response, issues);
          report(issues, "WorkspaceBillingRates", "rate that is not a finite decimal skipped");
          for (const auto& key : converted.deprecated) {
            if (deprecated_logged_.insert(key).second) {
              log::warn("modal rate key is deprecated; ignored", {{"key", key.substr(0, 80)}});
            }
          }
          sink_.modal_rates(std::move(converted.rates));
        }
        call_done(p, result);
      });
}

void Rounds::billing_report(Poller& p, const std::string& resolution,
                            const std::vector<std::string>& app_ids) {
  const auto [start, end] = billing_window(resolution);
  pb::WorkspaceBillingReportRequest request;
  *request.mutable_start_timestamp() = to_timestamp(start);
  *request.mutable_end_timestamp() = to_timestamp(end);
  request.set_resolution(resolution);
  for (const auto& id : app_ids) request.add_app_ids(id);
  rpc_.billing_report(std::move(request), [this, &p, resolution, start = start, end = end](
                                              BillingAttempt& stream, const Rpc::Result& result) {
    if (!result && stream.overflow) {
      sink_.count_error(kComponent, "parse");
      Failure f;
      f.method = "WorkspaceBillingReport";
      f.code = grpc::StatusCode::OUT_OF_RANGE;
      f.error_type = "parse";
      f.detail = "more than 200000 billing items; report dropped";
      note_failure(p, f);
      call_done(p, std::nullopt);
      return;
    }
    if (!result) {
      auto& billing = stream.report;
      billing.resolution = resolution;
      billing.start = static_cast<double>(start);
      billing.end = static_cast<double>(end);
      const auto& issues = stream.issues;
      if (issues.total() > 0) {
        for (int i = 0; i < issues.total(); ++i) sink_.count_error(kComponent, "parse");
        log::warn("modal billing values skipped: not a finite decimal, or no app id / interval",
                  {{"resolution", resolution},
                   {"skipped", issues.malformed},
                   {"not_finite", issues.not_finite},
                   {"example_cost", issues.example}});
      }
      sink_.modal_billing(std::move(billing));
    }
    call_done(p, result);
  });
}

// Data that no longer makes sense: counted as "parse" and logged once per response.
void Rounds::report(const modal_convert::Issues& issues, std::string_view method,
                    std::string_view what) {
  if (issues.total() == 0) return;
  for (int i = 0; i < issues.total(); ++i) sink_.count_error(kComponent, "parse");
  log::warn("modal response item ignored", {{"method", method},
                                            {"what", what},
                                            {"count", issues.total()},
                                            {"not_finite", issues.not_finite},
                                            {"example", issues.example}});
}

}  // namespace mx::modal_client
