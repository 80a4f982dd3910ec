# Shared settings and helpers for hack/cluster/cluster.sh.
# shellcheck shell=bash

# ---- pinned versions (see docs/development.md for why) ----
KUBE_VERSION=v1.34.4          # last 1.34 patch served by the module proxy; 1.35+ refuses cgroup v1 by default
ETCD_VERSION=v3.6.4           # the etcd server Kubernetes v1.34.4 itself requires (built in the same go build)
CSI_RESIZER_VERSION=v2.3.0
CSI_SNAPSHOTTER_VERSION=v8.7.0
COREDNS_VERSION=v1.14.7
PAUSE_TAG=3.10

# ---- fixed addresses (interfaces the harness creates itself) ----
NODE_IF=cdi-node0             # bridge with no ports: this kernel has no CONFIG_DUMMY
NODE_IP=10.99.0.1             # the node's InternalIP; pods reach host test servers here
NODE_NAME=cdi-node
POD_CIDR=10.244.0.0/24
CNI_BRIDGE=cdi-cni0
SERVICE_CIDR=10.96.0.0/16
KUBERNETES_SVC_IP=10.96.0.1
DNS_SVC_IP=10.96.0.10
APISERVER_PORT=6443
ETCD_CLIENT_PORT=23790        # loopback only; not 2379 so a stray system etcd cannot collide
ETCD_PEER_PORT=23800
REGISTRY_PORT=5000

# ---- locations ----
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
CLUSTER_DIR="$REPO_ROOT/.cluster"
PKI_DIR="$CLUSTER_DIR/pki"
CONF_DIR="$CLUSTER_DIR/conf"
LOG_DIR="$CLUSTER_DIR/logs"
RUN_DIR="$CLUSTER_DIR/run"
KUBECONFIG_PATH="$CLUSTER_DIR/kubeconfig"
CACHE_ROOT="${CDI_DEV_CACHE:-$HOME/.cache/cdi-dev}"
KUBE_BIN="$CACHE_ROOT/kube-$KUBE_VERSION/bin"
CSI_BIN="$CACHE_ROOT/csi-sidecars-resizer-$CSI_RESIZER_VERSION-snapshotter-$CSI_SNAPSHOTTER_VERSION/bin"
COREDNS_BIN="$CACHE_ROOT/coredns-$COREDNS_VERSION/bin"
# Node-wide state (containerd, kubelet, CNI) lives outside the repo: kernel mounts and sockets.
NODE_STATE=/var/lib/cdi-dev
NODE_RUN=/run/cdi-dev
CONTAINERD_SOCK="$NODE_RUN/containerd/containerd.sock"
KUBELET_ROOT="$NODE_STATE/kubelet"
REGISTRY_DATA="$CACHE_ROOT/registry-data"   # survives cluster:down, so pushed images stay

export GOMODCACHE="$CACHE_ROOT/go/mod"
export GOCACHE="$CACHE_ROOT/go/cache"
export GOFLAGS=-mod=mod
export PATH="$REPO_ROOT/node_modules/.bin:$KUBE_BIN:/usr/local/go/bin:$PATH"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'cluster: %s\n' "$*" >&2; exit 1; }

# ---- background daemons: pid files in $RUN_DIR, logs in $LOG_DIR ----
# start_daemon NAME CMD... : starts CMD in its own session, output to $LOG_DIR/NAME.log.
start_daemon() {
  local name=$1; shift
  if daemon_alive "$name"; then return 0; fi
  mkdir -p "$RUN_DIR" "$LOG_DIR"
  # No descriptor beyond 0-2 reaches a daemon: an inherited lock (cluster.sh's fd 8, or a caller's flock) would
  # otherwise be held for the daemon's whole life.
  setsid "$@" >>"$LOG_DIR/$name.log" 2>&1 </dev/null 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&- &
  echo $! >"$RUN_DIR/$name.pid"
}

# start_supervised NAME CMD... : like start_daemon, restarted a second after it exits (CSI sidecars exit when the
# driver's socket goes away; in a pod the kubelet would restart them).
start_supervised() {
  local name=$1; shift
  start_daemon "$name" bash -c 'while :; do "$@"; echo "exited ($?), restarting in 1s"; sleep 1; done' "$name" "$@"
}

daemon_pid() { [ -f "$RUN_DIR/$1.pid" ] && cat "$RUN_DIR/$1.pid"; }

# pid_running PID : alive and not a zombie (PID 1 here reaps orphans only every few seconds)
pid_running() {
  local s; s=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [[ $s != Z* ]]
}

daemon_alive() {
  local pid; pid=$(daemon_pid "$1" 2>/dev/null) || return 1
  [ -n "$pid" ] && pid_running "$pid"
}

# stop_daemon NAME : TERM, wait up to 15 s, then KILL; the pid we recorded and its process group (setsid made
# the pid the group's id, so a supervisor loop and its child go together).
stop_daemon() {
  local name=$1 pid i
  pid=$(daemon_pid "$name" 2>/dev/null) || return 0
  if [ -n "$pid" ] && pid_running "$pid"; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 150); do pid_running "$pid" || break; sleep 0.1; done
    if pid_running "$pid"; then kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$RUN_DIR/$name.pid"
}

# wait_for DESCRIPTION SECONDS CMD... : polls CMD until it succeeds.
wait_for() {
  local what=$1 secs=$2 i; shift 2
  for i in $(seq 1 $((secs * 2))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  die "$what did not become ready within ${secs}s (see $LOG_DIR/)"
}

kc() { kubectl --kubeconfig "$KUBECONFIG_PATH" "$@"; }
