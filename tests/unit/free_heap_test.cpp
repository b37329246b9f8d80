// release_free_heap: pages freed between live blocks go back to the kernel.
#include "common/free_heap.h"

#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

namespace mx {
namespace {

// Resident anonymous memory of this process, in KiB.
long rss_anon_kib() {
  std::ifstream status("/proc/self/status");
  std::string key;
  long value = 0;
  while (status >> key) {
    if (key == "RssAnon:") {
      status >> value;
      return value;
    }
    status.ignore(4096, '\n');
  }
  return -1;
}

TEST(FreeHeap, PagesFreedBetweenLiveBlocksLeaveTheProcess) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "the sanitizers bring their own allocator";
#endif
#if !defined(__GLIBC__)
  GTEST_SKIP() << "glibc only";
#endif
  // 2,048 blocks of 32 KiB (below glibc's mmap threshold: they come from the heap), touched;
  // every other one freed leaves 32 MiB free between live blocks, which glibc keeps resident.
  constexpr std::size_t kBlock = 32 * 1024;
  std::vector<std::unique_ptr<char[]>> blocks;
  for (int i = 0; i < 2048; ++i) {
    blocks.emplace_back(new char[kBlock]);
    for (std::size_t b = 0; b < kBlock; b += 4096) blocks.back()[b] = 1;
  }
  for (std::size_t i = 0; i < blocks.size(); i += 2) blocks[i].reset();
  const long before = rss_anon_kib();
  ASSERT_GT(before, 0);
  EXPECT_TRUE(release_free_heap());
  const long after = rss_anon_kib();
  // The whole pages inside each freed block go back (its edges hold malloc's bookkeeping): at
  // least 16 of its 32 KiB, 16 MiB in all.
  EXPECT_LT(after, before - 16 * 1024) << "before " << before << " KiB, after " << after;
}

}  // namespace
}  // namespace mx
