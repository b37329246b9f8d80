// One page of a Kubernetes LIST response, read as Informer::list reads it: a JSON object with
// "items" (an array of objects) and metadata.resourceVersion. Each item goes
// through every parser of src/sources/kubernetes/parse.h; a non-object item must be harmless.
#include <string>

#include "kube_objects.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool init = (mx::fuzz::capture_logs(), true);
  (void)init;
  const auto page = nlohmann::json::parse(mx::fuzz::as_text(data, size), nullptr, false);
  if (page.is_discarded() || !page.is_object()) return 0;
  (void)mx::kube::resource_version(page);
  const auto items = page.find("items");
  if (items == page.end() || !items->is_array()) return 0;
  for (const auto& item : *items) mx::fuzz::parse_every_kind(item);
  return 0;
}
