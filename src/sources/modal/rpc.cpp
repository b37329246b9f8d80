#include "sources/modal/rpc.h"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <utility>

#include <boost/asio/post.hpp>

#include "common/log.h"
#include "sources/modal/modal_util.h"

#ifdef MX_GRPC_WITHOUT_XDS
// gRPC core registers its optional plugins (xDS resolver and load-balancing policies, the RBAC
// filter, Google default credentials with ALTS, the file-watcher certificate provider) through
// this one function; gRPC's own builds without them define it empty
// (grpc_plugin_registry_noextra.cc). Defined here, before libgrpc.a is searched, it keeps that
// archive's member out of the link and with it ~2 MB of code the exporter never runs: it talks
// to Modal's fixed endpoints with TLS or plaintext credentials and needs none of those plugins.
// Only with the static archives (MODAL_EXPORTER_STATIC_GRPC): against the shared library it would
// save nothing. The symbol is gRPC's C++ name for
// grpc_core::RegisterExtraFilters(grpc_core::CoreConfiguration::Builder*), whose types live in
// gRPC's internal headers, which Debian does not ship.
extern "C" void mx_grpc_register_no_extra_plugins(void* builder) __asm__(
    "_ZN9grpc_core20RegisterExtraFiltersEPNS_17CoreConfiguration7BuilderE");
extern "C" void mx_grpc_register_no_extra_plugins(void*) {}
#endif

namespace mx::modal_client {
namespace {

constexpr std::string_view kComponent = "modal_api";

// TLS trust: the CA bundle SSL_CERT_FILE names, as OpenSSL (and so the Kubernetes and telemetry
// clients, and curl) reads it; else the system bundle when there is one; else gRPC's own default
// roots.
grpc::SslCredentialsOptions system_roots() {
  grpc::SslCredentialsOptions options;
  const char* named = std::getenv("SSL_CERT_FILE");
  std::vector<const char*> paths;
  if (named && *named) paths.push_back(named);
  paths.insert(paths.end(),
               {"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"});
  for (const char* path : paths) {
    std::ifstream in(path, std::ios::binary);
    if (!in) continue;
    std::ostringstream pem;
    pem << in.rdbuf();
    if (!pem.str().empty()) {
      options.pem_root_certs = pem.str();
      break;
    }
  }
  return options;
}

// The URLs of server_url's list, as written (for the logs).
std::vector<std::string> split_urls(const std::string& list) {
  std::vector<std::string> urls;
  std::istringstream in(list);
  for (std::string url; std::getline(in, url, ',');) {
    url.erase(0, url.find_first_not_of(' '));
    url.erase(url.find_last_not_of(' ') + 1);
    urls.push_back(url);
  }
  return urls;
}

}  // namespace

std::uint64_t Lifetime::begin(std::function<void()> cancel) {
  std::lock_guard lock(mutex);
  const auto id = next_id++;
  cancellers.emplace(id, std::move(cancel));
  return id;
}

void Lifetime::end(std::uint64_t id) {
  std::function<void()> released;  // destroyed outside the lock
  std::lock_guard lock(mutex);
  auto it = cancellers.find(id);
  if (it != cancellers.end()) {
    released = std::move(it->second);
    cancellers.erase(it);
  }
  idle.notify_all();
}

void BillingAttempt::start(Stub& stub, grpc::CompletionQueue& queue,
                           std::function<void()> completed) {
  completed_ = std::move(completed);
  stream_ = stub.PrepareAsyncWorkspaceBillingReport(&context, *request_, &queue);
  stream_->StartCall(static_cast<CallThread::Op*>(this));
}

bool BillingAttempt::proceed(bool ok) {
  if (finishing_) {
    auto completed = std::move(completed_);  // it may hold the last reference to this attempt
    completed();
    return false;
  }
  if (ok && reading_) {
    if (items >= kMaxItems) {
      overflow = true;
      context.TryCancel();
      ok = false;
    } else {
      ++items;
      modal_convert::add_billing_item(item_, report, issues);
      item_.Clear();
    }
  }
  auto* tag = static_cast<CallThread::Op*>(this);
  if (ok) {
    reading_ = true;
    stream_->Read(&item_, tag);
  } else {
    // End of stream, broken, or cut off: Finish brings the status.
    finishing_ = true;
    stream_->Finish(&status, tag);
  }
  return false;
}

// One call through its attempts.
struct Rpc::Call {
  const char* method;
  bool with_auth;  // false: AuthTokenGet itself (no JWT, the TokenManager counts its errors)
  bool may_refuse;
  std::function<std::shared_ptr<Attempt>()> make;
  std::function<void(Attempt&, const Result&)> done;
  std::size_t servers_tried = 0;
  bool jwt_refetched = false;
  std::string sent_jwt;
};

Rpc::Rpc(boost::asio::io_context& io, const ModalConfig& config, ModalSink& sink,
         CallObserver observer)
    : io_(io), config_(config), sink_(sink), observer_(std::move(observer)), tokens_(config, sink) {
  std::string error;
  const auto targets = parse_modal_server_urls(config_.server_url, &error);
  if (!targets) throw std::logic_error("modal.server_url passed the config reader: " + error);
  const auto urls = split_urls(config_.server_url);
  grpc::ChannelArguments args;
  args.SetUserAgentPrefix("modal-exporter");
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);  // retries are paced by our own backoff
  args.SetMaxReceiveMessageSize(64 * 1024 * 1024);
  for (std::size_t i = 0; i < targets->size(); ++i) {
    const auto& target = (*targets)[i];
    Endpoint e;
    e.url = i < urls.size() ? urls[i] : target.target;
    auto credentials =
        target.tls ? grpc::SslCredentials(system_roots()) : grpc::InsecureChannelCredentials();
    e.channel = grpc::CreateCustomChannel(target.target, credentials, args);
    e.stub = pb::ModalClient::NewStub(e.channel);
    endpoints_.push_back(std::move(e));
  }
  tokens_.set_fetch([this](auto got) {
    call(
        "AuthTokenGet", false,
        [] {
          return std::make_shared<UnaryAttempt<pb::AuthTokenGetRequest, pb::AuthTokenGetResponse>>(
              std::make_shared<const pb::AuthTokenGetRequest>(), &Stub::PrepareAsyncAuthTokenGet);
        },
        [got](Attempt& a, const Result&) {
          auto& attempt =
              static_cast<UnaryAttempt<pb::AuthTokenGetRequest, pb::AuthTokenGetResponse>&>(a);
          got(attempt.status, attempt.response.token());
        });
  });
}

Rpc::~Rpc() {
  stop();
}

void Rpc::billing_report(pb::WorkspaceBillingReportRequest request,
                         std::function<void(BillingAttempt&, const Result&)> done) {
  auto owned = std::make_shared<const pb::WorkspaceBillingReportRequest>(std::move(request));
  call(
      "WorkspaceBillingReport", true, [owned] { return std::make_shared<BillingAttempt>(owned); },
      [done = std::move(done)](Attempt& a, const Result& result) {
        done(static_cast<BillingAttempt&>(a), result);
      });
}

void Rpc::call(const char* method, bool with_auth, std::function<std::shared_ptr<Attempt>()> make,
               std::function<void(Attempt&, const Result&)> done, bool may_refuse) {
  auto c = std::make_shared<Call>();
  c->method = method;
  c->with_auth = with_auth;
  c->may_refuse = may_refuse;
  c->make = std::move(make);
  c->done = std::move(done);
  begin(c);
}

void Rpc::begin(const std::shared_ptr<Call>& call) {
  if (!call->with_auth) {
    launch(call);
    return;
  }
  tokens_.with_auth([this, call](const grpc::Status& auth) {
    if (auth.ok()) {
      launch(call);
      return;
    }
    auto attempt = call->make();
    attempt->status = auth;
    auto failure = describe(call->method, auth, true, tokens_.scrub(auth.error_message()));
    failure.before_call = true;
    // Every call would fail alike until a token is fetched: never go on at the same pace.
    if (failure.pace == Pace::go_on) failure.pace = Pace::back_off;
    call->done(*attempt, failure);
  });
}

// Starts one attempt on the call thread against the active server; stop() cancels it.
void Rpc::launch(const std::shared_ptr<Call>& call) {
  auto attempt = call->make();
  call->sent_jwt = tokens_.set_metadata(attempt->context, call->with_auth);
  const auto endpoint = active_;
  Stub& stub = *endpoints_[endpoint].stub;
  auto life = lifetime_;
  const auto id = life->begin([attempt] { attempt->context.TryCancel(); });
  calls_.run([this, life, id, attempt, call, endpoint, &stub](grpc::CompletionQueue& queue) {
    if (life->stopped) return life->end(id);
    attempt->start(stub, queue, [this, life, id, attempt, call, endpoint] {
      boost::asio::post(io_, [this, life, attempt, call, endpoint] {
        if (!life->stopped) attempt_done(call, *attempt, endpoint);
      });
      life->end(id);
    });
  });
}

void Rpc::attempt_done(const std::shared_ptr<Call>& call, Attempt& attempt, std::size_t endpoint) {
  const auto& status = attempt.status;
  if (observer_) observer_(call->method, grpc_code_name(static_cast<int>(status.error_code())));
  if (status.ok()) {
    finish(call, attempt, std::nullopt);
    return;
  }
  const bool was_reached = reached(endpoint, status);
  if (classify(status, was_reached) == FailureKind::unreachable && endpoints_.size() > 1) {
    fail_over(endpoint);
    if (++call->servers_tried < endpoints_.size()) {
      begin(call);  // the same call on the next server
      return;
    }
  }
  if (call->with_auth && status.error_code() == grpc::StatusCode::UNAUTHENTICATED &&
      !call->sent_jwt.empty() && !call->jwt_refetched) {
    call->jwt_refetched = true;
    tokens_.refused(call->sent_jwt);
    log::debug("modal auth token refused; fetching a new one", {{"method", call->method}});
    begin(call);
    return;
  }
  finish(call, attempt,
         describe(call->method, status, was_reached, tokens_.scrub(status.error_message())));
}

void Rpc::finish(const std::shared_ptr<Call>& call, Attempt& attempt, Result result) {
  if (result && call->with_auth && !(call->may_refuse && refused(result))) {
    sink_.count_error(kComponent, result->error_type);
    if (result->kind == FailureKind::unimplemented &&
        unimplemented_logged_.insert(call->method).second) {
      log::warn("modal API does not implement this call; its metrics stay absent",
                {{"method", call->method}, {"error_type", result->error_type}});
    }
  }
  call->done(attempt, result);
}

bool Rpc::reached(std::size_t endpoint, const grpc::Status& status) const {
  const auto state = endpoints_[endpoint].channel->GetState(false);
  if (state == GRPC_CHANNEL_TRANSIENT_FAILURE || state == GRPC_CHANNEL_CONNECTING) return false;
  return status.error_message().find("failed to connect") == std::string::npos &&
         status.error_message().find("Failed to connect") == std::string::npos;
}

void Rpc::fail_over(std::size_t from) {
  if (from != active_) return;  // another call has moved on already
  active_ = (active_ + 1) % endpoints_.size();
  log::warn("modal server unreachable; failing over",
            {{"from", endpoints_[from].url}, {"server", endpoints_[active_].url}});
}

bool Rpc::stop() {
  if (lifetime_->stopped.exchange(true)) return false;
  tokens_.stop();
  // Cancelled on the call thread, after every call already handed to it has started; a start
  // queued later sees `stopped` and does not call.
  calls_.run([life = lifetime_](grpc::CompletionQueue&) {
    std::vector<std::function<void()>> cancels;
    {
      std::lock_guard lock(life->mutex);
      for (auto& [id, cancel] : life->cancellers) cancels.push_back(cancel);
    }
    for (auto& cancel : cancels) cancel();
  });
  std::unique_lock lock(lifetime_->mutex);
  while (!lifetime_->cancellers.empty()) {
    if (!lifetime_->idle.wait_for(lock, std::chrono::seconds(5),
                                  [&] { return lifetime_->cancellers.empty(); })) {
      log::warn("modal source: still waiting for cancelled gRPC calls to finish",
                {{"calls", lifetime_->cancellers.size()}});
    }
  }
  return true;
}

}  // namespace mx::modal_client
