#include "http/routes.h"

#include "exposition/gzip.h"
#include "exposition/negotiation.h"

namespace mx {
namespace {

std::string landing_page(const RouteContext& c) {
  return "<!DOCTYPE html>\n<html><head><title>modal-exporter</title></head><body>\n"
         "<h1>modal-exporter</h1>\n<p>Version " +
         c.version +
         ". Derives the Modal operator's metrics from the Kubernetes API and Modal.</p>\n<ul>\n"
         "<li><a href=\"" +
         c.telemetry_path + "\">" + c.telemetry_path +
         "</a></li>\n<li><a href=\"/healthz\">/healthz</a></li>\n"
         "<li><a href=\"/readyz\">/readyz</a></li>\n</ul>\n</body></html>\n";
}

HttpResponse metrics_response(const RouteContext& c, const HttpRequest& req) {
  const ExpositionFormat format = negotiate_format(req.accept);
  auto snapshot = c.snapshot();
  std::string tail = c.self_metrics(format);
  if (format == ExpositionFormat::openmetrics) tail += "# EOF\n";

  HttpResponse r;
  r.content_type = std::string(content_type(format));
  r.headers.emplace_back("Vary", "Accept, Accept-Encoding");
  // Scatter-gather: the response points at the snapshot's pieces (shared, so they outlive a
  // newer snapshot until the write ends); only the per-scrape tail is made here.
  if (accepts_gzip(req.accept_encoding)) {
    static const auto header = std::make_shared<const std::string>(gzip_header());
    const auto& pieces = snapshot->deflated(format);
    r.headers.emplace_back("Content-Encoding", "gzip");
    r.body.reserve(pieces.size() + 2);
    r.body.push_back(header);
    r.body.insert(r.body.end(), pieces.begin(), pieces.end());
    r.body.push_back(std::make_shared<const std::string>(
        gzip_tail(snapshot->crc32(format), snapshot->size(format), tail)));
  } else {
    const auto& pieces = snapshot->plain(format);
    r.body.reserve(pieces.size() + 1);
    r.body.insert(r.body.end(), pieces.begin(), pieces.end());
    r.body.push_back(std::make_shared<const std::string>(std::move(tail)));
  }
  return r;
}

}  // namespace

HttpHandler make_exporter_handler(RouteContext context) {
  auto c = std::make_shared<RouteContext>(std::move(context));
  return [c](const HttpRequest& req) -> HttpResponse {
    if (req.method != "GET" && req.method != "HEAD") {
      auto r = HttpResponse::text(405, "method not allowed: use GET or HEAD\n");
      r.headers.emplace_back("Allow", "GET, HEAD");
      return r;
    }
    const std::string path = req.target.substr(0, req.target.find('?'));
    if (path == c->telemetry_path) return metrics_response(*c, req);
    if (path == "/healthz") return HttpResponse::text(200, "ok\n");
    if (path == "/readyz") {
      std::string why;
      if (c->ready(why)) return HttpResponse::text(200, "ready\n");
      return HttpResponse::text(503, "not ready: waiting for the first success of: " + why + "\n");
    }
    if (path == "/") {
      auto r = HttpResponse::text(200, landing_page(*c));
      r.content_type = "text/html; charset=utf-8";
      return r;
    }
    return HttpResponse::text(404, "not found; try " + c->telemetry_path + "\n");
  };
}

}  // namespace mx
