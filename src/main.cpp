// modal-exporter: derives the Modal operator's Prometheus metrics from the Kubernetes API and
// Modal's control plane. See README.md.

#include <malloc.h>

#include <cstdio>
#include <exception>

#include "app/application.h"
#include "common/log.h"
#include "config/config.h"
#include "metrics/self_metrics.h"

int main(int argc, char** argv) {
  // A gzip scrape briefly needs a few hundred KiB at the top of the heap (the tail's deflate,
  // the self-metrics); with glibc's default 128 KiB trim threshold each scrape grew the heap,
  // page-faulted it in zeroed and gave it back: 7x fewer gzip scrapes/s (bench/). 4 MiB of
  // free heap may stay mapped instead.
  mallopt(M_TRIM_THRESHOLD, 4 << 20);
  // One malloc arena for every thread. The derivation (io thread) allocates what the publisher's
  // thread frees, and the other way round; with an arena per thread, memory freed in one arena
  // cannot serve the other thread's next allocation, so both heaps stay large. At 10k jobs one
  // arena peaked ~1.7 MB lower in back-to-back start-ups, at no measured cost in CPU.
  // The threads that allocate much (io, publisher) rarely allocate at the same moment.
  mallopt(M_ARENA_MAX, 1);
  mx::Flags flags;
  mx::Config config;
  try {
    flags = mx::parse_flags(argc, argv);
    if (flags.show_help) {
      std::fputs(mx::flags_usage().c_str(), stdout);
      return 0;
    }
    if (flags.show_version) {
      const auto b = mx::current_build_info();
      std::printf("modal-exporter %s (revision %s, %s)\n", b.version.c_str(), b.revision.c_str(),
                  b.compiler.c_str());
      return 0;
    }
    config = mx::resolve_config(flags);
  } catch (const mx::ConfigError& e) {
    std::fprintf(stderr, "modal-exporter: %s\n", e.message.c_str());
    return 2;
  }
  mx::log::configure(config.log.level, config.log.format);
  try {
    mx::Application app(config, flags);
    return app.run();
  } catch (const mx::ConfigError& e) {
    mx::log::error("invalid configuration", {{"err", e.message}});
    return 2;
  } catch (const std::exception& e) {
    mx::log::error("modal-exporter failed", {{"err", e.what()}});
    return 1;
  }
}
