#include "sources/modal/modal_source.h"

#include <optional>
#include <string>
#include <utility>

#include <boost/asio/executor_work_guard.hpp>

#include "common/log.h"
#include "sources/modal/budget.h"
#include "sources/modal/modal_util.h"
#include "sources/modal/rounds.h"
#include "sources/modal/rpc.h"

#ifndef MX_VERSION
#define MX_VERSION "dev"
#endif

namespace mx {

namespace {

// The metadata values the source sends besides the credentials, defaulted and checked: gRPC
// aborts the process on an illegal header value.
ModalConfig with_metadata(ModalConfig config) {
  if (config.libmodal_version.empty()) {
    config.libmodal_version = std::string("modal-exporter/") + MX_VERSION;
  }
  for (const auto* value : {&config.client_version, &config.libmodal_version}) {
    if (!valid_metadata_value(*value)) {
      throw ConfigError{
          "modal.client_version / libmodal_version hold characters that cannot be sent as "
          "metadata"};
    }
  }
  return config;
}

}  // namespace

class ModalSource::Impl {
 public:
  Impl(boost::asio::io_context& io, ModalConfig config, BackoffConfig backoff, ModalSink& sink,
       SourceHealth& health, CallObserver observer)
      : io_(io),
        config_(with_metadata(std::move(config))),
        backoff_(backoff),
        rpc_(io, config_, sink, std::move(observer)),
        budget_(io, config_, backoff_, sink, health, rpc_),
        rounds_(io, config_, backoff_, sink, health, rpc_, budget_) {}

  ~Impl() { stop(); }

  void start() {
    if (started_ || rpc_.lifetime()->stopped) return;
    started_ = true;
    work_.emplace(io_.get_executor());
    log::info("modal source starting", {{"server", rpc_.server()},
                                        {"servers", rpc_.servers()},
                                        {"environment", config_.environment},
                                        {"max_calls_per_second", config_.max_calls_per_second}});
    rounds_.start();
  }

  void stop() {
    if (!rpc_.stop()) return;
    rounds_.stop();
    budget_.stop();
    work_.reset();
  }

 private:
  boost::asio::io_context& io_;
  const ModalConfig config_;
  const BackoffConfig backoff_;
  modal_client::Rpc rpc_;
  modal_client::Budget budget_;
  modal_client::Rounds rounds_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  bool started_ = false;
};

ModalSource::ModalSource(boost::asio::io_context& io, ModalConfig config, BackoffConfig backoff,
                         ModalSink& sink, SourceHealth& health, CallObserver observer)
    : impl_(std::make_unique<Impl>(io, std::move(config), backoff, sink, health,
                                   std::move(observer))) {}

ModalSource::~ModalSource() = default;

void ModalSource::start() {
  impl_->start();
}
void ModalSource::stop() {
  impl_->stop();
}

}  // namespace mx
