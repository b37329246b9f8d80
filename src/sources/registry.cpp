#include "sources/registry.h"

#include <stdexcept>

#include "metrics/self_metrics.h"
#include "model/model.h"
#include "sources/kubernetes/kubernetes_source.h"
#ifdef MX_WITH_MODAL
#include "sources/modal/modal_source.h"
#endif
#include "sources/telemetry/telemetry_source.h"
#include "sources/upstream/upstream_source.h"

namespace mx {
namespace {

template <typename T, typename SourceConfig>
std::unique_ptr<Source> make_source(boost::asio::io_context& io, const SourceConfig& section,
                                    const Config& config, Model& model, SourceHealth& health) {
  return std::make_unique<SourceAdapter<T>>(
      std::make_unique<T>(io, section, config.backoff, model, health));
}

// The error types of sources that speak HTTP (docs/metrics.md, modal_operator_errors_total).
std::vector<std::string> http_errors() {
  return {"timeout", "connection", "http_4xx", "http_5xx", "parse"};
}

#ifdef MX_WITH_MODAL
std::unique_ptr<Source> make_modal(boost::asio::io_context& io, const Config& config, Model& model,
                                   SourceHealth& health, SelfMetrics& self) {
  // Every Modal call is counted in modal_exporter_modal_calls_total{method, code}.
  auto observe = [&self](std::string_view method, std::string_view code) {
    self.count_modal_call(method, code);
  };
  return std::make_unique<SourceAdapter<ModalSource>>(
      std::make_unique<ModalSource>(io, config.modal, config.backoff, model, health, observe));
}
#else
// A build without the Modal source (-DMODAL_EXPORTER_WITH_MODAL=OFF) still knows the section:
// enabling it reports the source down with this reason instead of being ignored.
std::unique_ptr<Source> make_modal(boost::asio::io_context&, const Config&, Model&, SourceHealth&,
                                   SelfMetrics&) {
  throw std::runtime_error(
      "this modal-exporter was built without the Modal source (cmake "
      "-DMODAL_EXPORTER_WITH_MODAL=OFF); set sources.modal.enabled to false or use a build with "
      "it");
}
#endif

}  // namespace

const std::vector<SourceEntry>& source_registry() {
  static const std::vector<SourceEntry> sources = {
      {"kubernetes", "kubernetes_api",
       [] {
         auto types = http_errors();
         types.push_back("auth");
         return types;
       }(),
       [](const Config& c) { return c.kubernetes.enabled; },
       [](boost::asio::io_context& io, const Config& c, Model& m, SourceHealth& h, SelfMetrics&) {
         return make_source<KubernetesSource>(io, c.kubernetes, c, m, h);
       }},
      {"modal",
       "modal_api",
       {"grpc_unavailable", "grpc_deadline_exceeded", "grpc_resource_exhausted",
        "grpc_unauthenticated", "grpc_permission_denied", "grpc_unimplemented", "grpc_internal",
        "grpc_unknown", "parse", "auth"},
       [](const Config& c) { return c.modal.enabled; },
       [](boost::asio::io_context& io, const Config& c, Model& m, SourceHealth& h,
          SelfMetrics& self) { return make_modal(io, c, m, h, self); }},
      {"telemetry", "telemetry", http_errors(), [](const Config& c) { return c.telemetry.enabled; },
       [](boost::asio::io_context& io, const Config& c, Model& m, SourceHealth& h, SelfMetrics&) {
         return make_source<TelemetrySource>(io, c.telemetry, c, m, h);
       }},
      {"upstream", "upstream", http_errors(), [](const Config& c) { return c.upstream.enabled; },
       [](boost::asio::io_context& io, const Config& c, Model& m, SourceHealth& h, SelfMetrics&) {
         return make_source<UpstreamSource>(io, c.upstream, c, m, h);
       }},
  };
  return sources;
}

std::vector<std::string> enabled_source_names(const Config& config) {
  std::vector<std::string> out;
  for (const auto& s : source_registry()) {
    if (s.enabled(config)) out.push_back(s.name);
  }
  return out;
}

void declare_error_types(const Config& config, Model& model) {
  for (const auto& entry : source_registry()) {
    if (entry.enabled(config)) model.declare_errors(entry.component, entry.error_types);
  }
}

}  // namespace mx
