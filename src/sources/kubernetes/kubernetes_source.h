// The Kubernetes source: informers for ModalJobs, ModalEndpoints, offloaded
// Pods and Warning Events, plus a poll of the operator's own Pod, all feeding a KubernetesSink.
// Everything runs on the given io_context (one thread, no locks).
#pragma once

#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>

#include "config/config.h"
#include "model/sinks.h"
#include "sources/kubernetes/cluster_access.h"

namespace mx {

class KubernetesSource {
 public:
  KubernetesSource(boost::asio::io_context& io, KubernetesConfig config, BackoffConfig backoff,
                   KubernetesSink& sink, SourceHealth& health);
  ~KubernetesSource();
  KubernetesSource(const KubernetesSource&) = delete;
  KubernetesSource& operator=(const KubernetesSource&) = delete;

  // Where the in-cluster token, CA and service address are (tests point these elsewhere).
  void set_in_cluster_paths(kube::InClusterPaths paths);
  // The operator's own Pod; defaults to $POD_NAMESPACE/$POD_NAME. Empty disables the poll.
  void set_operator_pod(std::string namespace_name, std::string name);

  // Connects (retrying with backoff until the cluster is reachable) and starts the informers.
  void start();
  // Cancels every request and timer; the object may be destroyed right after.
  void stop();

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace mx
