// The exporter's endpoints: the metrics path, /healthz, /readyz and the landing page.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "exposition/snapshot.h"
#include "http/server.h"

namespace mx {

struct RouteContext {
  std::string telemetry_path = "/metrics";
  std::string version;
  // The current model snapshot (never null).
  std::function<std::shared_ptr<const Snapshot>()> snapshot;
  // The self-metrics block appended after the snapshot, rendered for each scrape.
  std::function<std::string(ExpositionFormat)> self_metrics;
  // True when ready; otherwise `why` names the sources that have not succeeded yet.
  std::function<bool(std::string& why)> ready;
};

HttpHandler make_exporter_handler(RouteContext context);

}  // namespace mx
