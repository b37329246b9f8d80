// Hands the heap's free pages back to the kernel. glibc returns freed memory only from the top
// of each arena: pages left free between live blocks (a snapshot replaced, a Kubernetes page or
// a Modal answer decoded and dropped) stay resident, so RSS drifts up under churn and scrapes
// while the live heap does not. The application calls this on its 5 s tick.
#pragma once

namespace mx {

// Releases whole free pages of every malloc arena (glibc's malloc_trim); a no-op with another C
// library. Returns whether anything was released.
bool release_free_heap();

}  // namespace mx
