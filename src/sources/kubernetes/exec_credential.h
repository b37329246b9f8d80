// Exec credential plugins of kubeconfig users (client.authentication.k8s.io/v1 and v1beta1), as
// kubectl runs them: `aws eks get-token`, `gke-gcloud-auth-plugin`, `kubelogin`. The plugin runs
// without stdin and without a terminal, on a thread of its own so the io_context never waits for
// it; its ExecCredential is cached until its expirationTimestamp or until the API rejects it.
// Neither the token nor the key ever reaches a log line or an error message.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/duration.h"
#include "sources/kubernetes/cluster_access.h"

namespace mx::kube {

namespace asio = boost::asio;

struct ExecCredential {
  std::string token;
  std::string client_cert_pem;
  std::string client_key_pem;
  std::optional<std::chrono::system_clock::time_point> expires;
};

// Reads a plugin's standard output. nullopt with `error` (which never quotes the output) when it
// is not an ExecCredential of `api_version` with a token or a certificate and key.
std::optional<ExecCredential> parse_exec_credential(std::string_view output,
                                                    std::string_view api_version,
                                                    std::string& error);

struct ProcessResult {
  std::string error;  // "" when the process ran and exited with status 0
  std::string out;
  std::string err;
};

// Runs `argv` (argv[0] looked up on PATH unless it holds a '/') with `env_add` added to the
// environment, stdin from /dev/null, in a process group of its own that is killed at `timeout`
// or when `cancel` becomes true. Blocks; call it off the io thread.
ProcessResult run_process(const std::vector<std::string>& argv,
                          const std::vector<std::pair<std::string, std::string>>& env_add,
                          Duration timeout, const std::atomic<bool>& cancel);

class ExecCredentialProvider : public std::enable_shared_from_this<ExecCredentialProvider> {
 public:
  struct Result {
    std::shared_ptr<const ExecCredential> credential;  // null when `error` says why
    std::string error;
  };

  ExecCredentialProvider(asio::any_io_executor executor, ExecConfig config,
                         Duration timeout = std::chrono::seconds(30));
  ~ExecCredentialProvider();
  ExecCredentialProvider(const ExecCredentialProvider&) = delete;
  ExecCredentialProvider& operator=(const ExecCredentialProvider&) = delete;

  // The cached credential, or a new one from the plugin when there is none, it expired or it was
  // rejected. Concurrent callers share one run. After a failure the plugin runs again only once
  // its backoff passed; until then the last failure is returned.
  asio::awaitable<Result> get();
  // The API answered 401 to a request made with `used`: the next get() runs the plugin again
  // (once, however many requests carried it). True when a retry will carry another credential.
  bool rejected(const std::shared_ptr<const ExecCredential>& used);
  // Kills a running plugin and wakes its waiters (they get an error).
  void cancel();
  int runs() const { return runs_; }

 private:
  void finish(ProcessResult result);

  asio::any_io_executor executor_;
  ExecConfig config_;
  Duration timeout_;
  asio::steady_timer wake_;  // never expires: cancel() wakes every waiter
  // Shared with the worker thread. Once `cancel` is set (under `mu`) the worker posts nothing
  // more: the io_context may be shutting down by then.
  struct WorkerControl {
    std::mutex mu;
    std::atomic<bool> cancel{false};
  };
  std::shared_ptr<WorkerControl> control_ = std::make_shared<WorkerControl>();
  std::thread worker_;
  bool running_ = false;
  bool cancelled_ = false;
  std::shared_ptr<const ExecCredential> current_;
  std::string last_error_;
  int failures_ = 0;
  std::chrono::steady_clock::time_point retry_at_{};
  int runs_ = 0;
};

}  // namespace mx::kube
