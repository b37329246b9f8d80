// One line of a Kubernetes WATCH stream, framed as Informer::handle_line frames it: a JSON object
// with "type" and "object"; the object (also that of an ERROR or BOOKMARK event) goes through
// every parser of src/sources/kubernetes/parse.h.
#include <string>

#include "kube_objects.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool init = (mx::fuzz::capture_logs(), true);
  (void)init;
  std::string_view line = mx::fuzz::as_text(data, size);
  const auto event = nlohmann::json::parse(line, nullptr, false);
  if (event.is_discarded() || !event.is_object()) return 0;
  const auto type = event.find("type");
  const auto object = event.find("object");
  if (type == event.end() || !type->is_string() || object == event.end() || !object->is_object()) {
    return 0;
  }
  mx::fuzz::parse_every_kind(*object);
  return 0;
}
