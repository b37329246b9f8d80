// The web config file (--web.config.file) at run time: loading it and the TLS files it names
// into the server's security settings, re-loading on SIGHUP and when any of those files changes
// (polled once a second by stat(), which follows the symlinks of Kubernetes Secret volumes). A
// file that fails to load is logged and the running settings are kept.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <string_view>

#include "http/server.h"

namespace mx {

// What stat() says of a file: a change of any field is a change of the file.
struct FileStamp {
  std::string path;
  bool exists = false;
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = 0;
  long mtime_sec = 0, mtime_nsec = 0;

  bool operator==(const FileStamp& o) const {
    return exists == o.exists && dev == o.dev && ino == o.ino && size == o.size &&
           mtime_sec == o.mtime_sec && mtime_nsec == o.mtime_nsec;
  }
};

// Reads the web config file and everything it names. On success it becomes the running config;
// on failure `initial` throws the ConfigError, a reload logs it and keeps the running config.
void load_web_config(HttpServer::State& state, std::string_view trigger, bool initial);
// Re-loads the file when it or a file it names changes, until the server stops.
void watch_web_config(const std::shared_ptr<HttpServer::State>& state);

}  // namespace mx
