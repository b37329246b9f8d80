#include "sources/modal/module_loader.h"

#include <dlfcn.h>
#include <unistd.h>

#include <climits>
#include <filesystem>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "common/log.h"
#include "sources/modal/module.h"

namespace mx {
namespace {

std::string this_binary_directory() {
  char path[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", path, sizeof path - 1);
  if (n <= 0) return {};
  return std::filesystem::path(std::string(path, static_cast<std::size_t>(n)))
      .parent_path()
      .string();
}

// Where the module is looked for, in order: the binary's own directory (a build tree) and the
// module directory of an installed layout (<prefix>/lib/modal-exporter beside <prefix>/bin).
std::vector<std::string> module_directories() {
  const auto dir = this_binary_directory();
  if (dir.empty()) return {};
  return {dir, (std::filesystem::path(dir) / MX_MODULE_RELATIVE_DIR).lexically_normal().string()};
}

std::string module_path_in(const std::vector<std::string>& directories) {
  for (const auto& dir : directories) {
    auto candidate = std::filesystem::path(dir) / modal_module::kFileName;
    std::error_code ec;
    if (std::filesystem::is_regular_file(candidate, ec)) return candidate.string();
  }
  return {};
}

std::string join(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts) {
    if (!out.empty()) out += ", ";
    out += p;
  }
  return out;
}

// dlopen()s the module and checks it. The handle is never closed: the module's gRPC threads
// and static objects live until the process exits.
modal_module::MakeSourceFunction load_module() {
  const auto directories = module_directories();
  const auto path = module_path_in(directories);
  if (path.empty()) {
    throw std::runtime_error(std::string("the Modal source module ") + modal_module::kFileName +
                             " was not found (looked in " + join(directories) +
                             "); install it with the binary (cmake --install puts it in <prefix>/" +
                             MX_MODULE_INSTALL_DIR + ") or disable the modal section");
  }
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = ::dlerror();
    throw std::runtime_error("cannot load the Modal source module " + path + ": " +
                             (why != nullptr ? why : "unknown error"));
  }
  auto build_id = reinterpret_cast<modal_module::BuildIdFunction>(
      ::dlsym(handle, modal_module::kBuildIdSymbol));
  auto make_source = reinterpret_cast<modal_module::MakeSourceFunction>(
      ::dlsym(handle, modal_module::kMakeSourceSymbol));
  if (build_id == nullptr || make_source == nullptr) {
    throw std::runtime_error("the Modal source module " + path + " lacks its entry points (" +
                             modal_module::kBuildIdSymbol + ", " + modal_module::kMakeSourceSymbol +
                             ")");
  }
  if (std::string_view(build_id()) != MX_MODULE_BUILD_ID) {
    throw std::runtime_error("the Modal source module " + path + " comes from another build (" +
                             build_id() + ", this binary is " + MX_MODULE_BUILD_ID +
                             "); install the binary and its module together");
  }
  log::debug("loaded the Modal source module", {{"path", path}});
  return make_source;
}

}  // namespace

std::unique_ptr<Source> make_modal_source(boost::asio::io_context& io, const ModalConfig& config,
                                          const BackoffConfig& backoff, ModalSink& sink,
                                          SourceHealth& health,
                                          ModalSource::CallObserver observer) {
  // Loaded once; a failed load is tried again at the next start (a reload after installing it).
  static std::mutex mutex;
  static modal_module::MakeSourceFunction make_source = nullptr;
  std::lock_guard lock(mutex);
  if (make_source == nullptr) make_source = load_module();

  modal_module::Host host;
  host.io = &io;
  host.config = &config;
  host.backoff = &backoff;
  host.sink = &sink;
  host.health = &health;
  host.observer = std::move(observer);
  host.log_write = &log::write;
  host.log_enabled = &log::enabled;
  modal_module::Made made;
  make_source(host, made);
  if (!made.source) {
    throw std::runtime_error(made.error.empty() ? "the Modal source module made no source"
                                                : made.error);
  }
  return std::move(made.source);
}

}  // namespace mx
