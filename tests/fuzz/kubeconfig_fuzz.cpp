// A kubeconfig document (parse_kubeconfig): any text either yields a ClusterAccess or throws
// AccessError with a message; nothing else may escape. Relative file paths resolve against a
// directory that does not exist; stdin is /dev/null so that a path like /dev/stdin cannot block.
#include <fcntl.h>
#include <unistd.h>

#include <string>

#include "fuzz_support.h"
#include "sources/kubernetes/cluster_access.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool init = [] {
    mx::fuzz::capture_logs();
    const int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0) ::dup2(null_fd, 0);
    return true;
  }();
  (void)init;
  const std::string text(mx::fuzz::as_text(data, size));
  try {
    const auto access = mx::kube::parse_kubeconfig(text, "fuzz", "/nonexistent-fuzz-dir");
    // parse_server_url fills in 443 / 80 when the URL has no port.
    MX_FUZZ_CHECK(!access.server.port.empty());
  } catch (const mx::kube::AccessError& e) {
    MX_FUZZ_CHECK(e.what()[0] != '\0');
  }
  return 0;
}
