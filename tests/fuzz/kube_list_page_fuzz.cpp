// One page of a Kubernetes LIST response, read as Informer::list reads it (ListReader): a JSON
// object with "items" and metadata.resourceVersion / continue. Each item goes through every
// parser of src/sources/kubernetes/parse.h; a non-object item must be harmless. The page is
// read once whole and once with each parser's FieldFilter: a filtered item must parse exactly
// as the whole one.
#include <string>
#include <vector>

#include "kube_objects.h"
#include "sources/kubernetes/list_reader.h"

namespace {

using nlohmann::json;

std::vector<json> read_items(std::string_view body, const mx::kube::FieldFilter& fields, bool& ok) {
  std::vector<json> items;
  mx::kube::ListPage page;
  mx::kube::ListReader reader;
  std::string text(body);
  ok = reader
           .read(
               text, fields, [&](const json& item) { items.push_back(item); }, page)
           .empty();
  return items;
}

template <typename Parse>
void check_filter(std::string_view body, const std::vector<json>& whole,
                  const mx::kube::FieldFilter& fields, Parse parse) {
  bool ok = false;
  const auto filtered = read_items(body, fields, ok);
  MX_FUZZ_CHECK(ok && filtered.size() == whole.size());
  for (std::size_t i = 0; i < whole.size(); ++i) {
    const auto a = parse(filtered[i]);
    const auto b = parse(whole[i]);
    MX_FUZZ_CHECK(a.uid == b.uid && a.error == b.error && a.object == b.object);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool init = (mx::fuzz::capture_logs(), true);
  (void)init;
  const std::string_view body = mx::fuzz::as_text(data, size);
  bool ok = false;
  const auto whole = read_items(body, mx::kube::FieldFilter{}, ok);
  for (const auto& item : whole) mx::fuzz::parse_every_kind(item);
  if (!ok) return 0;
  check_filter(body, whole, mx::kube::modal_job_fields(), mx::kube::parse_modal_job);
  check_filter(body, whole, mx::kube::offloaded_pod_fields(), mx::kube::parse_offloaded_pod);
  check_filter(body, whole, mx::kube::modal_endpoint_fields(), mx::kube::parse_modal_endpoint);
  check_filter(body, whole, mx::kube::warning_event_fields(), mx::kube::parse_warning_event);
  return 0;
}
