#include "sources/kubernetes/exec_credential.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>

#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

#include "common/log.h"
#include "sources/kubernetes/parse.h"

extern char** environ;

namespace mx::kube {

using nlohmann::json;

namespace {

constexpr std::size_t kMaxOutputBytes = 1 << 20;
constexpr auto kInitialRetry = std::chrono::seconds(1);
constexpr auto kMaxRetry = std::chrono::minutes(1);

std::string find_on_path(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  std::string_view dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  while (true) {
    const auto colon = dirs.find(':');
    std::string dir(dirs.substr(0, colon));
    if (dir.empty()) dir = ".";
    const std::string candidate = dir + "/" + name;
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        ::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
    if (colon == std::string_view::npos) return {};
    dirs.remove_prefix(colon + 1);
  }
}

// Owns the two ends of a pipe until they are handed over.
struct Pipe {
  int fd[2] = {-1, -1};
  ~Pipe() {
    for (int f : fd) {
      if (f >= 0) ::close(f);
    }
  }
  bool open() { return ::pipe2(fd, O_CLOEXEC) == 0; }
};

}  // namespace

ProcessResult run_process(const std::vector<std::string>& argv,
                          const std::vector<std::pair<std::string, std::string>>& env_add,
                          Duration timeout, const std::atomic<bool>& cancel) {
  ProcessResult r;
  if (argv.empty() || argv[0].empty()) {
    r.error = "no command";
    return r;
  }
  const std::string path = find_on_path(argv[0]);
  if (path.empty()) {
    r.error = "executable file not found in $PATH";
    return r;
  }

  // The environment: the exporter's, with the additions replacing same-named variables.
  std::map<std::string, std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view kv(*e);
    const auto eq = kv.find('=');
    if (eq == std::string_view::npos) continue;
    env[std::string(kv.substr(0, eq))] = std::string(kv.substr(eq + 1));
  }
  for (const auto& [k, v] : env_add) env[k] = v;
  std::vector<std::string> env_strings;
  env_strings.reserve(env.size());
  for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = argv;
  std::vector<char*> argp;
  for (auto& s : args) argp.push_back(s.data());
  argp.push_back(nullptr);

  Pipe out;
  Pipe err;
  if (!out.open() || !err.open()) {
    r.error = std::string("cannot create a pipe: ") + std::strerror(errno);
    return r;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out.fd[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err.fd[1], 2);
  // The exporter's sockets must not leak into the plugin.
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK);
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  pid_t pid = -1;
  const int spawn_error =
      posix_spawn(&pid, path.c_str(), &actions, &attr, argp.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (spawn_error != 0) {
    r.error = std::string("cannot run: ") + std::strerror(spawn_error);
    return r;
  }
  ::close(out.fd[1]);
  out.fd[1] = -1;
  ::close(err.fd[1]);
  err.fd[1] = -1;

  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool killed = false;
  bool too_much = false;
  std::string* sinks[2] = {&r.out, &r.err};
  int* fds[2] = {&out.fd[0], &err.fd[0]};
  while (*fds[0] >= 0 || *fds[1] >= 0) {
    if (!killed && (cancel.load() || std::chrono::steady_clock::now() >= deadline)) {
      ::kill(-pid, SIGKILL);
      killed = true;
    }
    pollfd p[2];
    for (int i = 0; i < 2; ++i) p[i] = pollfd{*fds[i], POLLIN, 0};
    const int n = ::poll(p, 2, 100);
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (*fds[i] < 0 || (p[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      char buf[4096];
      const ssize_t got = ::read(*fds[i], buf, sizeof buf);
      if (got > 0) {
        if (sinks[i]->size() < kMaxOutputBytes) {
          sinks[i]->append(buf, static_cast<std::size_t>(got));
        } else if (i == 0 && !killed) {
          too_much = true;
          ::kill(-pid, SIGKILL);
          killed = true;
        }
      } else if (got == 0 || errno != EINTR) {
        ::close(*fds[i]);
        *fds[i] = -1;
      }
    }
  }
  // Output closed: the plugin exited or closed it; wait for it, still bounded by the deadline.
  int status = 0;
  while (true) {
    const pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid || (w < 0 && errno != EINTR)) break;
    if (!killed && (cancel.load() || std::chrono::steady_clock::now() >= deadline)) {
      ::kill(-pid, SIGKILL);
      killed = true;
    }
    ::usleep(10 * 1000);
  }
  if (cancel.load()) {
    r.error = "cancelled";
  } else if (too_much) {
    r.error = "wrote more than " + std::to_string(kMaxOutputBytes) + " bytes";
  } else if (killed) {
    r.error = "killed after " + format_duration(timeout) + " (timeout)";
  } else if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
    r.error = "exit status " + std::to_string(WEXITSTATUS(status));
  } else if (WIFSIGNALED(status)) {
    r.error = "killed by signal " + std::to_string(WTERMSIG(status));
  }
  return r;
}

std::optional<ExecCredential> parse_exec_credential(std::string_view output,
                                                    std::string_view api_version,
                                                    std::string& error) {
  const json j = json::parse(output, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    error = "its output is not a JSON object";
    return std::nullopt;
  }
  const auto str = [](const json& o, const char* key) -> std::string {
    auto it = o.find(key);
    return it != o.end() && it->is_string() ? it->get<std::string>() : std::string{};
  };
  if (str(j, "kind") != "ExecCredential") {
    error = "its output is not an ExecCredential";
    return std::nullopt;
  }
  if (const std::string v = str(j, "apiVersion"); v != api_version) {
    error = "it answered with apiVersion \"" + v + "\", the kubeconfig asks for \"" +
            std::string(api_version) + "\"";
    return std::nullopt;
  }
  const auto status = j.find("status");
  if (status == j.end() || !status->is_object()) {
    error = "its ExecCredential has no status";
    return std::nullopt;
  }
  ExecCredential c;
  c.token = str(*status, "token");
  c.client_cert_pem = str(*status, "clientCertificateData");
  c.client_key_pem = str(*status, "clientKeyData");
  if (c.client_cert_pem.empty() != c.client_key_pem.empty()) {
    error = "its ExecCredential has clientCertificateData without clientKeyData (or the reverse)";
    return std::nullopt;
  }
  if (c.token.empty() && c.client_cert_pem.empty()) {
    error = "its ExecCredential has neither a token nor a client certificate";
    return std::nullopt;
  }
  if (const std::string expiry = str(*status, "expirationTimestamp"); !expiry.empty()) {
    const auto seconds = parse_timestamp(expiry);
    if (!seconds) {
      error = "its expirationTimestamp \"" + expiry + "\" is not an RFC 3339 time";
      return std::nullopt;
    }
    c.expires = std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(
            std::chrono::duration<double>(*seconds)));
  }
  return c;
}

// --- ExecCredentialProvider --------------------------------------------------------------------

ExecCredentialProvider::ExecCredentialProvider(asio::any_io_executor executor, ExecConfig config,
                                               Duration timeout)
    : executor_(std::move(executor)),
      config_(std::move(config)),
      timeout_(timeout),
      wake_(executor_, asio::steady_timer::time_point::max()) {}

ExecCredentialProvider::~ExecCredentialProvider() {
  {
    std::lock_guard lock(control_->mu);
    control_->cancel = true;
  }
  if (worker_.joinable()) worker_.join();
}

void ExecCredentialProvider::cancel() {
  cancelled_ = true;
  {
    std::lock_guard lock(control_->mu);
    control_->cancel = true;
  }
  wake_.cancel();
}

asio::awaitable<ExecCredentialProvider::Result> ExecCredentialProvider::get() {
  auto self = shared_from_this();  // a waiter keeps the provider (and its worker) alive
  for (;;) {
    if (cancelled_) co_return Result{nullptr, "cancelled"};
    if (current_ && (!current_->expires || std::chrono::system_clock::now() < *current_->expires)) {
      co_return Result{current_, ""};
    }
    if (!running_) {
      if (failures_ > 0 && std::chrono::steady_clock::now() < retry_at_) {
        co_return Result{nullptr, last_error_};
      }
      current_.reset();
      running_ = true;
      ++runs_;
      if (worker_.joinable()) worker_.join();  // the last run already posted its result
      std::vector<std::string> argv{config_.command};
      argv.insert(argv.end(), config_.args.begin(), config_.args.end());
      auto env = config_.env;
      env.emplace_back("KUBERNETES_EXEC_INFO", config_.exec_info);
      worker_ = std::thread([argv = std::move(argv), env = std::move(env), timeout = timeout_,
                             control = control_, executor = executor_,
                             weak = weak_from_this()]() mutable {
        ProcessResult result = run_process(argv, env, timeout, control->cancel);
        std::lock_guard lock(control->mu);
        if (control->cancel) return;
        asio::post(executor, [weak, result = std::move(result)]() mutable {
          if (auto provider = weak.lock()) provider->finish(std::move(result));
        });
      });
    }
    // The run's outcome is returned as it is, even a credential that expired already: asking
    // again would only run the plugin in a loop.
    while (running_ && !cancelled_) {
      boost::system::error_code ec;
      co_await wake_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    if (cancelled_) co_return Result{nullptr, "cancelled"};
    if (current_) co_return Result{current_, ""};
    if (!last_error_.empty()) co_return Result{nullptr, last_error_};
    // Rejected between the run and this waiter resuming: run again.
  }
}

void ExecCredentialProvider::finish(ProcessResult result) {
  running_ = false;
  if (!result.err.empty()) {
    std::string text = result.err.substr(0, 4096);
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    log::debug("Kubernetes exec credential plugin wrote to stderr",
               {{"command", config_.command}, {"stderr", text}});
  }
  std::string error = result.error;
  if (error.empty()) {
    auto credential = parse_exec_credential(result.out, config_.api_version, error);
    if (credential) {
      failures_ = 0;
      last_error_.clear();
      current_ = std::make_shared<const ExecCredential>(std::move(*credential));
      log::debug("Kubernetes exec credential plugin returned a credential",
                 {{"command", config_.command},
                  {"kind", current_->token.empty() ? "client certificate" : "token"}});
    }
  }
  if (!error.empty() && !cancelled_) {
    ++failures_;
    Duration delay = kInitialRetry;
    for (int i = 1; i < failures_ && delay < kMaxRetry; ++i) delay *= 2;
    delay = std::min<Duration>(delay, kMaxRetry);
    retry_at_ = std::chrono::steady_clock::now() + delay;
    last_error_ = "the Kubernetes exec credential plugin " + config_.command + " failed: " + error;
    log::error("Kubernetes exec credential plugin failed", {{"command", config_.command},
                                                            {"error", error},
                                                            {"install_hint", config_.install_hint},
                                                            {"retry_in", format_duration(delay)}});
  }
  wake_.cancel();
}

bool ExecCredentialProvider::rejected(const std::shared_ptr<const ExecCredential>& used) {
  if (!used) return false;
  // Only the credential the request carried is dropped: after a renewal, late 401s of requests
  // made with the old one must not run the plugin again.
  if (current_ == used) current_.reset();
  return true;
}

}  // namespace mx::kube
