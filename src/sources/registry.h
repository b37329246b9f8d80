// The source registry: every source of the exporter in one table. The application loops over
// it to start, stop and reload sources; the model learns from it which error types each source
// can raise (their counters start at 0). A source never renders metrics: it hands plain structs
// to the model through its sink (model/sinks.h), and its health to a SourceHealth (the
// application's: the self metrics and readiness), never through the model.
//
// To add a source: give it a folder under src/sources/, a sink interface in model/sinks.h that
// the model implements, a config section, and one entry in source_registry() (registry.cpp).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "config/config.h"

namespace mx {

class Model;
class SelfMetrics;
class SourceHealth;

// A running source, as the application sees it.
class Source {
 public:
  virtual ~Source() = default;
  // Starts polling or watching. Called once, on the io_context thread.
  virtual void start() = 0;
  // Stops; afterwards the source never calls its sink again. Idempotent.
  virtual void stop() = 0;
};

// Every source class has start() and stop(); this adapts one to the Source interface without
// making the source depend on the registry.
template <typename T>
class SourceAdapter : public Source {
 public:
  explicit SourceAdapter(std::unique_ptr<T> source) : source_(std::move(source)) {}
  void start() override { source_->start(); }
  void stop() override { source_->stop(); }

 private:
  std::unique_ptr<T> source_;
};

struct SourceEntry {
  std::string name;       // health, logs, /readyz: "kubernetes", "modal", ...
  std::string component;  // modal_operator_errors_total{component}: "kubernetes_api", ...
  std::vector<std::string> error_types;  // what the source can count (start at 0)
  bool (*enabled)(const Config& config);
  // Builds the source; throws when its config cannot be used (the caller reports it).
  std::unique_ptr<Source> (*make)(boost::asio::io_context& io, const Config& config, Model& model,
                                  SourceHealth& health, SelfMetrics& self);
};

const std::vector<SourceEntry>& source_registry();

// Names of the sources `config` enables, in registry order.
std::vector<std::string> enabled_source_names(const Config& config);
// Declares to the model the error types of every source `config` enables (they start at 0).
void declare_error_types(const Config& config, Model& model);

}  // namespace mx
