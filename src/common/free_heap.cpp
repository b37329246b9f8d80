#include "common/free_heap.h"

#include <cstdlib>  // defines __GLIBC__ with glibc

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace mx {

bool release_free_heap() {
#if defined(__GLIBC__)
  // 0: keep no extra padding at the top. The pages released are only unmapped (MADV_DONTNEED):
  // reusing one later costs a page fault.
  return malloc_trim(0) != 0;
#else
  return false;
#endif
}

}  // namespace mx
