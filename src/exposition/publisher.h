// Builds snapshots on a thread of its own (docs/design.md, step 4), so that a scrape never waits
// behind a publish: the io_context thread hands over the derivation's changes and goes back to
// serving; scrapes meanwhile get the previous snapshot, and the new one replaces it atomically
// when done. Batches that arrive while a build runs are applied together by the next one.
// Its own figures are self metrics (modal_exporter_snapshot_*, docs/metrics.md), declared in the
// self-metric registry and set by the build thread when a build finishes.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "exposition/snapshot.h"
#include "exposition/snapshot_builder.h"

namespace mx {

class Publisher {
 public:
  // Starts the build thread with an empty snapshot of `families`; declares the publisher's
  // families in `self_metrics`.
  Publisher(std::vector<FamilyDesc> families, int gzip_level, prometheus::Registry& self_metrics);
  ~Publisher();  // finishes the queued work, then joins
  Publisher(const Publisher&) = delete;
  Publisher& operator=(const Publisher&) = delete;

  // Queues the changes for the next snapshot, compressed at `gzip_level`. A batch that is not
  // `final` is one slice of a larger change: it is merged into the chunk texts (its buffer then
  // kept as a spare, see take_spare_batch) but no snapshot is built until a final batch arrives.
  void submit(ChangeBatch batch, int gzip_level, bool final = true);
  // A slice's batch, applied and emptied, for the next slice to be written into (empty when
  // there is none): its buffers are memory already in use, where a new ~0.5 MB buffer per slice
  // would be fresh pages to fault in (~3,500 page faults over a 10k-job start-up). Up to two
  // are kept (rendering and applying slices run unevenly), only while slices come: a final
  // batch frees them.
  ChangeBatch take_spare_batch();
  // Batches queued and not applied yet (the submitter slows down when they pile up).
  std::size_t queued() const;
  // Blocks until everything submitted so far is in current() (start-up, tests).
  void flush();
  std::shared_ptr<const Snapshot> current() const {
    std::lock_guard lock(current_mu_);
    return current_;
  }

 private:
  void run();

  SnapshotBuilder builder_;  // build thread only (after construction)
  // A mutex, not std::atomic<std::shared_ptr>: libstdc++ 12's atomic shared_ptr releases its
  // internal lock with a relaxed store after load(), so a load and the next store race in the
  // C++ memory model (ThreadSanitizer reports it in the e2e scenario). Held for a pointer copy.
  mutable std::mutex current_mu_;
  std::shared_ptr<const Snapshot> current_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::condition_variable idle_;
  std::vector<std::pair<ChangeBatch, bool>> queue_;  // (batch, final)
  static constexpr std::size_t kSpareBatches = 2;
  std::vector<ChangeBatch> spares_;
  int gzip_level_;
  std::uint64_t submitted_ = 0;  // batches queued ...
  std::uint64_t built_ = 0;      // ... and batches in current()
  bool stopping_ = false;
  // Set by the build thread (prometheus-cpp metrics are thread-safe).
  prometheus::Counter& builds_;
  // The gauges, indexed by Gauge (the table in publisher.cpp names them).
  enum Gauge { build_seconds, chunks, memory_bytes, size_bytes, gauge_count };
  std::array<prometheus::Gauge*, gauge_count> gauges_{};
  void set(Gauge gauge, double value) { gauges_[gauge]->Set(value); }
  std::thread thread_;  // last: starts after everything above is initialised
};

}  // namespace mx
