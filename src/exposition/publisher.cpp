#include "exposition/publisher.h"

#include <algorithm>

#include "common/log.h"

namespace mx {
namespace {

// The publisher's gauges, in the order of Publisher::Gauge.
constexpr std::pair<const char*, const char*> kGauges[] = {
    {"modal_exporter_snapshot_build_seconds",
     "Time the last snapshot took to build (re-rendering and compressing its changed chunks), "
     "off the thread that serves scrapes."},
    {"modal_exporter_snapshot_chunks",
     "Chunks of the current snapshot (each compressed once, shared with the next snapshot while "
     "unchanged)."},
    {"modal_exporter_snapshot_memory_bytes",
     "Bytes the snapshot builder holds: chunk texts, their deflate pieces and indexes."},
    {"modal_exporter_snapshot_size_bytes",
     "Size of the current snapshot's body in the text format, before the per-scrape "
     "self-metrics."},
};

}  // namespace

Publisher::Publisher(std::vector<FamilyDesc> families, int gzip_level,
                     prometheus::Registry& self_metrics)
    : builder_(std::move(families), gzip_level),
      current_(builder_.build()),
      gzip_level_(gzip_level),
      builds_(prometheus::BuildCounter()
                  .Name("modal_exporter_snapshot_builds_total")
                  .Help("Snapshots built from the derivation's changes (each after a publish or "
                        "a coalesced burst of them).")
                  .Register(self_metrics)
                  .Add({})),
      gauges_([&self_metrics] {
        static_assert(std::size(kGauges) == gauge_count);
        std::array<prometheus::Gauge*, gauge_count> gauges{};
        for (std::size_t i = 0; i < gauge_count; ++i) {
          gauges[i] = &prometheus::BuildGauge()
                           .Name(kGauges[i].first)
                           .Help(kGauges[i].second)
                           .Register(self_metrics)
                           .Add({});
        }
        return gauges;
      }()),
      thread_([this] { run(); }) {
  set(chunks, static_cast<double>(builder_.chunks()));
  set(memory_bytes, static_cast<double>(builder_.memory_bytes()));
  set(size_bytes, static_cast<double>(current_->size(ExpositionFormat::text)));
}

Publisher::~Publisher() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

void Publisher::submit(ChangeBatch batch, int gzip_level, bool final) {
  std::vector<ChangeBatch> spares;
  {
    std::lock_guard lock(mu_);
    queue_.emplace_back(std::move(batch), final);
    gzip_level_ = gzip_level;
    ++submitted_;
    if (final) spares.swap(spares_);  // no slice follows: freed (unlocked) before the build
  }
  wake_.notify_one();
}

ChangeBatch Publisher::take_spare_batch() {
  std::lock_guard lock(mu_);
  if (spares_.empty()) return {};
  ChangeBatch spare = std::move(spares_.back());
  spares_.pop_back();
  return spare;
}

std::size_t Publisher::queued() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

void Publisher::flush() {
  std::unique_lock lock(mu_);
  const std::uint64_t target = submitted_;
  idle_.wait(lock, [&] { return built_ >= target; });
}

void Publisher::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, nothing left
    auto batches = std::exchange(queue_, {});
    const int level = gzip_level_;
    const std::uint64_t target = submitted_;
    lock.unlock();

    const auto start = std::chrono::steady_clock::now();
    bool final = false;
    std::vector<ChangeBatch> spares;
    try {
      builder_.set_gzip_level(level);
      for (auto& [batch, is_final] : batches) {
        builder_.apply(batch);
        final = final || is_final;
      }
      if (!final) {
        for (auto& [batch, is_final] : batches) {
          batch.clear();
          spares.push_back(std::move(batch));
        }
      }
      batches.clear();
      if (final) {
        std::shared_ptr<const Snapshot> next = builder_.build();
        set(size_bytes, static_cast<double>(next->size(ExpositionFormat::text)));
        // The previous snapshot is freed after the unlock (or by the last scrape holding it).
        std::lock_guard swap_lock(current_mu_);
        current_.swap(next);
      }
      set(chunks, static_cast<double>(builder_.chunks()));
      set(memory_bytes, static_cast<double>(builder_.memory_bytes()));
    } catch (const std::exception& e) {
      // Only allocation failure can get here; scrapes keep the previous snapshot.
      log::error("building the metrics snapshot failed", {{"err", e.what()}});
    }
    if (final) {
      set(build_seconds,
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      builds_.Increment();
    }

    lock.lock();
    // Kept for the next slices unless the last slice is already queued (submit() frees the
    // spares when the last slice comes later). Those not kept are freed unlocked.
    const bool last_queued =
        std::any_of(queue_.begin(), queue_.end(), [](const auto& q) { return q.second; });
    while (!last_queued && !spares.empty() && spares_.size() < kSpareBatches) {
      spares_.push_back(std::move(spares.back()));
      spares.pop_back();
    }
    built_ = target;
    idle_.notify_all();
    lock.unlock();
    spares.clear();
    lock.lock();
  }
}

}  // namespace mx
