// The boundary between the exporter and the Modal source module.
//
// The Modal source is built as a loadable module (modal-source.so) rather than into the binary:
// it is the only part that needs gRPC, protobuf, abseil and Modal's generated API code, and the
// dynamic loader maps and relocates a linked library at start-up whether it is used or not
// (~6 MiB of resident pages and their start-up CPU). The exporter loads the module only when
// the `modal` section is enabled (module_loader.h); with Modal off those libraries are never
// mapped.
//
// The module and the binary come from the same build: the host first compares build_id()
// with its own and refuses a module of another build, then calls make_source(). Both sides
// are C++ of the same compiler and headers; nothing here is a stable ABI for other builds.
#pragma once

#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>

#include "common/log.h"
#include "config/config.h"
#include "model/sinks.h"
#include "sources/modal/modal_source.h"
#include "sources/registry.h"

namespace mx::modal_module {

// File name of the module, looked for beside the binary and in the installed module directory.
inline constexpr const char* kFileName = "modal-source.so";
// Exported symbols (extern "C", so dlsym finds them by these names).
inline constexpr const char* kBuildIdSymbol = "mx_modal_module_build_id";
inline constexpr const char* kMakeSourceSymbol = "mx_modal_module_make_source";

// What the exporter hands the module. Pointers are borrowed and outlive the source.
struct Host {
  boost::asio::io_context* io = nullptr;
  const ModalConfig* config = nullptr;
  const BackoffConfig* backoff = nullptr;
  ModalSink* sink = nullptr;
  SourceHealth* health = nullptr;
  ModalSource::CallObserver observer;
  // The host's logger: the module's log calls go through it (log::forward_to).
  log::WriteFunction log_write = nullptr;
  log::EnabledFunction log_enabled = nullptr;
};

// What make_source() gives back: a source, or the reason there is none (e.g. an unusable
// server_url). Errors travel as text so no exception crosses the module boundary.
struct Made {
  std::unique_ptr<Source> source;
  std::string error;
};

using BuildIdFunction = const char* (*)();
using MakeSourceFunction = void (*)(const Host& host, Made& made);

}  // namespace mx::modal_module
