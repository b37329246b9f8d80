// Loading, re-loading and watching the web config file (web_config_watcher.h).
#include "http/web_config_watcher.h"

#include <sys/stat.h>

#include <chrono>
#include <vector>

#include "common/log.h"
#include "config/web_config.h"
#include "http/server_state.h"
#include "http/tls.h"

namespace mx {
namespace {

constexpr auto kWatchInterval = std::chrono::seconds(1);

FileStamp stamp_of(const std::string& path) {
  FileStamp s;
  s.path = path;
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {  // follows the symlinks Kubernetes Secret volumes use
    s.exists = true;
    s.dev = st.st_dev;
    s.ino = st.st_ino;
    s.size = st.st_size;
    s.mtime_sec = st.st_mtim.tv_sec;
    s.mtime_nsec = st.st_mtim.tv_nsec;
  }
  return s;
}

std::vector<std::string> tls_files(const TlsServerConfig& tls) {
  std::vector<std::string> out;
  for (const auto* f : {&tls.cert_file, &tls.key_file, &tls.client_ca_file}) {
    if (!f->empty()) out.push_back(*f);
  }
  return out;
}

}  // namespace

void load_web_config(HttpServer::State& st, std::string_view trigger, bool initial) {
  const std::string& path = st.config.config_file;
  std::vector<FileStamp> stamps{stamp_of(path)};  // before reading: a later change is seen
  try {
    auto next = std::make_shared<Security>();
    next->config = load_web_config_file(path);
    for (const auto& f : tls_files(next->config.tls)) stamps.push_back(stamp_of(f));
    st.stamps = stamps;
    if (next->config.tls.enabled) next->tls = make_tls_context(next->config.tls);
    if (next->config.auth_enabled()) {
      next->auth = std::make_shared<BasicAuth>(next->config.basic_auth_users);
    }
    if (!initial && static_cast<bool>(next->tls) != static_cast<bool>(st.security->tls)) {
      log::warn("Web config reload turns TLS " + std::string(next->tls ? "on" : "off") +
                "; new connections use it");
    }
    st.bucket.configure(next->config.rate_limit_interval, next->config.rate_limit_burst);
    st.security = std::move(next);
    if (st.metrics.last_reload_successful) st.metrics.last_reload_successful->Set(1);
    if (!initial) log::info("Web config reloaded", {{"file", path}, {"trigger", trigger}});
  } catch (const ConfigError& e) {
    if (initial) throw;
    if (st.stamps.empty()) st.stamps = stamps;
    st.stamps[0] = stamps[0];
    if (st.metrics.last_reload_successful) st.metrics.last_reload_successful->Set(0);
    log::error("Web config reload failed; keeping the running config",
               {{"file", path}, {"trigger", trigger}, {"err", e.message}});
  }
}

void watch_web_config(const std::shared_ptr<HttpServer::State>& state) {
  state->watch_timer.expires_after(kWatchInterval);
  state->watch_timer.async_wait([state](boost::system::error_code ec) {
    if (ec || state->stopping) return;
    for (const auto& s : state->stamps) {
      if (!(stamp_of(s.path) == s)) {
        load_web_config(*state, "file change", false);
        break;
      }
    }
    watch_web_config(state);
  });
}

}  // namespace mx
