// The entry points of the Modal source module (module.h); compiled into modal-source.so only.
#include "sources/modal/module.h"

#include <exception>
#include <type_traits>

extern "C" {

// The host refuses the module unless this equals its own build id (module_loader.cpp).
__attribute__((visibility("default"))) const char* mx_modal_module_build_id() {
  return MX_MODULE_BUILD_ID;
}

__attribute__((visibility("default"))) void mx_modal_module_make_source(
    const mx::modal_module::Host& host, mx::modal_module::Made& made) {
  using namespace mx;
  if (host.log_write != nullptr && host.log_enabled != nullptr) {
    log::forward_to(host.log_write, host.log_enabled);
  }
  try {
    made.source = std::make_unique<SourceAdapter<ModalSource>>(std::make_unique<ModalSource>(
        *host.io, *host.config, *host.backoff, *host.sink, *host.health, host.observer));
  } catch (const std::exception& e) {
    made.error = e.what();
  }
}

}  // extern "C"

// Both signatures must match what the host casts the symbols to.
static_assert(
    std::is_same_v<decltype(&mx_modal_module_build_id), mx::modal_module::BuildIdFunction>);
static_assert(
    std::is_same_v<decltype(&mx_modal_module_make_source), mx::modal_module::MakeSourceFunction>);
