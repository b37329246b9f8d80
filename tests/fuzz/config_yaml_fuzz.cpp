// The exporter's YAML configuration (parse_config): any text either yields a validated Config or
// throws ConfigError with a message; nothing else (a yaml-cpp exception, a crash) may escape.
#include <string>

#include "config/config.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool init = (mx::fuzz::capture_logs(), true);
  (void)init;
  const std::string text(mx::fuzz::as_text(data, size));
  try {
    const mx::Config c = mx::parse_config(text, "fuzz.yaml");
    MX_FUZZ_CHECK(c.web.max_connections > 0);
    MX_FUZZ_CHECK(c.web.gzip_level >= 1 && c.web.gzip_level <= 9);
    MX_FUZZ_CHECK(c.shard.total_shards >= 1 && c.shard.shard >= 0 &&
                  c.shard.shard < c.shard.total_shards);
    // Every duration within Go's limit (int64 nanoseconds), whatever the digits and unit.
    for (const auto d : {c.modal.apps_interval, c.modal.rates_interval, c.backoff.max,
                         c.kubernetes.resync_interval, c.web.idle_timeout}) {
      MX_FUZZ_CHECK(d.count() > 0 && d.count() <= 9'223'372'036'854LL);
    }
  } catch (const mx::ConfigError& e) {
    MX_FUZZ_CHECK(!e.message.empty());
  }
  return 0;
}
