#include "sources/modal/budget.h"

#include <algorithm>

#include "common/log.h"
#include "sources/modal/convert.h"

namespace mx::modal_client {

Budget::Budget(boost::asio::io_context& io, const ModalConfig& config, const BackoffConfig& backoff,
               ModalSink& sink, SourceHealth& health, Rpc& rpc)
    : backoff_config_(backoff),
      sink_(sink),
      health_(health),
      rpc_(rpc),
      budget_(config.stats_interval),
      timer_(io),
      period_(std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(1.0 / config.max_calls_per_second))),
      backoff_(backoff.initial, backoff.max) {}

void Budget::want_task_info(const std::vector<std::string>& task_ids) {
  const IdKeys wanted(task_ids);
  std::erase_if(asked_tasks_, [&wanted](std::uint64_t key) { return !wanted.contains_key(key); });
  budget_.retain_tasks(wanted);
  for (const auto& id : task_ids) {
    if (!id.empty() && asked_tasks_.insert(IdKeys::key(id)).second) budget_.add_task(id);
  }
}

void Budget::set_functions(const std::vector<std::string>& ids) {
  budget_.set_functions(ids);
}

void Budget::kick(std::optional<Clock::time_point> wake) {
  auto at = std::max(next_allowed_, paused_until_);
  if (wake) at = std::max(at, *wake);
  if (armed_ && armed_at_ <= at) return;
  armed_ = true;
  armed_at_ = at;
  const auto generation = ++generation_;
  timer_.expires_at(at);
  timer_.async_wait(
      [this, life = rpc_.lifetime(), generation](const boost::system::error_code& ec) {
        if (life->stopped || ec || generation != generation_) return;
        armed_ = false;
        step();
      });
}

void Budget::step() {
  const auto now = Clock::now();
  if (now < paused_until_ || now < next_allowed_) {
    kick();
    return;
  }
  // Credentials come from the poll rounds; a completion kicks the budget again.
  if (!rpc_.tokens().has_credentials() || in_flight_ >= kMaxConcurrentCalls) return;
  auto next = budget_.next(now);
  switch (next.kind) {
    case CallBudget::Kind::none:
      if (next.wake) kick(*next.wake);
      return;
    case CallBudget::Kind::task_info:
      task_info(next.id);
      break;
    case CallBudget::Kind::function_stats:
      function_stats(next.id);
      break;
  }
  ++in_flight_;
  next_allowed_ = now + period_;
  kick();
}

void Budget::task_info(const std::string& task_id) {
  pb::TaskGetInfoRequest request;
  request.set_task_id(task_id);
  rpc_.unary(
      "TaskGetInfo", std::move(request), &Stub::PrepareAsyncTaskGetInfo,
      [this, task_id](pb::TaskGetInfoResponse& response, const Rpc::Result& result) {
        if (!result) {
          sink_.modal_task_info(modal_convert::task_info(response, task_id));
        } else if (result->pace != Pace::go_on && asked_tasks_.contains(IdKeys::key(task_id))) {
          // Asked again once the pause is over, while the job still waits for it.
          budget_.add_task(task_id);
        }
        done(result);
      });
}

void Budget::function_stats(const std::string& function_id) {
  pb::FunctionGetCurrentStatsRequest request;
  request.set_function_id(function_id);
  rpc_.unary("FunctionGetCurrentStats", std::move(request),
             &Stub::PrepareAsyncFunctionGetCurrentStats,
             [this, function_id](pb::FunctionStats& response, const Rpc::Result& result) {
               if (!result) {
                 sink_.modal_function_stats(modal_convert::function_stats(response, function_id));
               }
               done(result);
             });
}

void Budget::done(const Rpc::Result& result) {
  --in_flight_;
  if (!result) {
    backoff_.reset();
  } else if (result->kind == FailureKind::not_found) {
    log::debug("modal object not found", {{"method", result->method}});
  } else if (result->pace == Pace::go_on) {
    log::warn("modal call failed", {{"method", result->method},
                                    {"error_type", result->error_type},
                                    {"detail", result->detail}});
  } else {
    const Duration own = result->pace == Pace::wait_max ? backoff_config_.max : backoff_.next();
    const Duration delay = honour_hint(own, result->retry_after);
    paused_until_ = std::max(paused_until_, Clock::now() + delay);
    health_.source_failed("modal");
    log::warn("modal call budget paused", {{"method", result->method},
                                           {"error_type", result->error_type},
                                           {"detail", result->detail},
                                           {"attempt", backoff_.attempt()},
                                           {"retry_in", format_duration(delay)}});
  }
  kick();
}

}  // namespace mx::modal_client
