#include "common/open_files.h"

#include <sys/resource.h>

#include <mutex>

namespace mx {

std::size_t open_file_limit() {
  static std::once_flag raised;
  std::call_once(raised, [] {
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max) return;
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);  // refused: the soft limit stays as it was
  });
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return 1024;
  return rl.rlim_cur == RLIM_INFINITY ? static_cast<std::size_t>(1) << 20
                                      : static_cast<std::size_t>(rl.rlim_cur);
}

}  // namespace mx
