// style.metrics_doc: docs/metrics.md's summary table lists exactly the families the exporter can
// serve. The families come from their declarations: the derivation's tables, the self-metric
// registry with every source enabled, the process metrics, the publisher's and the HTTP
// server's families. A family missing from the table, or a row for one that no longer exists,
// fails the check.
//
// usage: metrics_doc_check <docs/metrics.md>
#include <boost/asio/io_context.hpp>
#include <fstream>
#include <iostream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "exposition/publisher.h"
#include "http/server.h"
#include "metrics/derivation.h"
#include "metrics/self_metrics.h"
#include "sources/registry.h"

namespace {

// The family names of the "# TYPE" lines of a text exposition.
void add_type_lines(const std::string& text, std::set<std::string>& out) {
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    const std::string prefix = "# TYPE ";
    if (line.rfind(prefix, 0) != 0) continue;
    out.insert(line.substr(prefix.size(), line.find(' ', prefix.size()) - prefix.size()));
  }
}

std::set<std::string> declared_families() {
  std::set<std::string> names;
  for (const auto& desc : mx::Derivation::family_descs()) names.insert(desc.name);

  mx::SelfMetrics self(mx::current_build_info());
  std::vector<std::string> sources;
  for (const auto& entry : mx::source_registry()) sources.push_back(entry.name);
  self.set_enabled_sources(sources);
  // prometheus-cpp collects a labelled family once it has a series: one of each.
  for (const auto& source : sources) self.source_succeeded(source, 0.1);
  self.count_modal_call("AppList", "ok");
  mx::Publisher publisher({}, 1, self.registry());

  // The HTTP server's families (the auth, rate-limit, TLS and reload ones exist only with a web
  // config file): declared in the registry when the server is made.
  boost::asio::io_context io;
  mx::WebConfig web;
  web.config_file = "web-config.yml";
  mx::HttpServer server(
      io, web, [](const mx::HttpRequest&) { return mx::HttpResponse{}; }, self.registry());

  // Every family of the registry, with or without samples yet; process_* are rendered.
  for (const auto& family : self.registry().Collect()) names.insert(family.name);
  add_type_lines(self.render(mx::ExpositionFormat::text), names);
  return names;
}

// The names in the first column of the table under "## Summary" (one family per row).
std::set<std::string> documented_families(std::istream& doc) {
  std::set<std::string> names;
  const std::regex row(R"(^\| `([a-z_:][a-z0-9_:]*)` \|)");
  bool in_summary = false;
  std::string line;
  while (std::getline(doc, line)) {
    if (line.rfind("## ", 0) == 0) in_summary = line == "## Summary";
    std::smatch m;
    if (in_summary && std::regex_search(line, m, row)) names.insert(m[1]);
  }
  return names;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: metrics_doc_check <docs/metrics.md>\n";
    return 2;
  }
  std::ifstream doc(argv[1]);
  if (!doc) {
    std::cerr << "cannot read " << argv[1] << "\n";
    return 2;
  }
  mx::log::configure(mx::LogLevel::error, mx::LogFormat::logfmt);
  const auto declared = declared_families();
  const auto documented = documented_families(doc);
  int problems = 0;
  for (const auto& name : declared) {
    if (documented.count(name)) continue;
    std::cout << name << ": served, but not in the summary table of " << argv[1] << "\n";
    ++problems;
  }
  for (const auto& name : documented) {
    if (declared.count(name)) continue;
    std::cout << name << ": in the summary table of " << argv[1] << ", but never declared\n";
    ++problems;
  }
  std::cout << declared.size() << " families declared, " << documented.size() << " documented, "
            << problems << " problem(s)\n";
  return problems == 0 ? 0 : 1;
}
