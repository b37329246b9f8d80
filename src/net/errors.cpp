#include "net/errors.h"

#ifndef MODAL_EXPORTER_VERSION
#define MODAL_EXPORTER_VERSION "dev"
#endif

namespace mx::net {

std::string_view error_type(const Error& error, AuthPolicy policy) {
  switch (error.kind) {
    case ErrorKind::timeout:
      return "timeout";
    case ErrorKind::parse:
    case ErrorKind::too_large:
      return "parse";
    case ErrorKind::http:
      if (policy == AuthPolicy::credentials && (error.status == 401 || error.status == 403)) {
        return "auth";
      }
      if (error.status >= 500 && error.status < 600) return "http_5xx";
      return "http_4xx";
    case ErrorKind::none:
    case ErrorKind::connection:
    case ErrorKind::bad_url:
    case ErrorKind::cancelled:
      break;
  }
  return "connection";
}

std::string_view user_agent() {
  return "modal-exporter/" MODAL_EXPORTER_VERSION;
}

}  // namespace mx::net
