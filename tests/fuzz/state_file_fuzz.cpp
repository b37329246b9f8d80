// The state file (Model::load_state): any bytes either restore the model or leave it fresh
// (load_state returns false); nothing may crash or throw. What loaded must survive a round trip:
// saving it and loading the saved file succeeds, and saving again gives the same bytes.
// The input reaches load_state through a memfd, so no file is written per execution.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "fuzz_support.h"
#include "model/model.h"

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

mx::Model fresh_model() {
  return mx::Model(mx::Config{}, [] { return 1.7e9; });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static int fd = -1;
  static std::string dir;
  if (fd < 0) {
    mx::fuzz::capture_logs();
    fd = ::memfd_create("mx-fuzz-state", 0);
    char tmpl[] = "/tmp/mx-fuzz-state-XXXXXX";
    MX_FUZZ_CHECK(fd >= 0 && ::mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    std::atexit([] { std::filesystem::remove_all(dir); });
  }
  MX_FUZZ_CHECK(::ftruncate(fd, 0) == 0);
  MX_FUZZ_CHECK(::pwrite(fd, data, size, 0) == static_cast<ssize_t>(size));
  auto model = fresh_model();
  std::string input_path = "/proc/self/fd/";
  input_path += std::to_string(fd);
  if (!model.load_state(input_path)) return 0;

  const std::string first = dir + "/first.json";
  const std::string second = dir + "/second.json";
  MX_FUZZ_CHECK(model.save_state(first));
  auto restarted = fresh_model();
  MX_FUZZ_CHECK(restarted.load_state(first));
  MX_FUZZ_CHECK(restarted.save_state(second));
  MX_FUZZ_CHECK(slurp(first) == slurp(second));
  return 0;
}
