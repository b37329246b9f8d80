// Loads the Modal source module (module.h) when Modal is enabled, and builds the source from it.
// Part of the binary; it needs neither gRPC nor protobuf.
#pragma once

#include <memory>

#include <boost/asio/io_context.hpp>

#include "config/config.h"
#include "model/sinks.h"
#include "sources/modal/modal_source.h"
#include "sources/registry.h"

namespace mx {

// Loads the module on first use, from the binary's own directory (a build tree) or else the
// module directory of an installed layout (<prefix>/lib/modal-exporter beside <prefix>/bin), (it
// stays loaded: gRPC keeps threads) and builds the source. Throws std::runtime_error naming what
// went wrong: the module is in none of the directories, cannot be loaded, comes from another build,
// or the source rejects its config.
std::unique_ptr<Source> make_modal_source(boost::asio::io_context& io, const ModalConfig& config,
                                          const BackoffConfig& backoff, ModalSink& sink,
                                          SourceHealth& health, ModalSource::CallObserver observer);

}  // namespace mx
