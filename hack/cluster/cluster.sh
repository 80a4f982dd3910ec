#!/usr/bin/env bash
# A real local Kubernetes cluster for development, tests and the demo.
#   hack/cluster/cluster.sh up [--profile control-plane|full]   start (idempotent; no-op when running)
#   hack/cluster/cluster.sh down                               stop everything and remove cluster state
#   hack/cluster/cluster.sh status                             print each component's health; non-zero if one is down
#   hack/cluster/cluster.sh sync                               rebuild the project's images, push them, redeploy
#   hack/cluster/cluster.sh memory                             resident memory of every cluster process
#   hack/cluster/cluster.sh restart-apiserver                  stop kube-apiserver and start it again, nothing else
#                                                              (the fault tests; only while holding the cluster lock)
# Kubeconfig: .cluster/kubeconfig. Logs: .cluster/logs/. See docs/development.md.
set -euo pipefail
HACK_CLUSTER=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=hack/lib/ensure.sh
source "$HACK_CLUSTER/../lib/ensure.sh"
# shellcheck source=hack/cluster/lib/common.sh
source "$HACK_CLUSTER/lib/common.sh"
# shellcheck source=hack/cluster/lib/build.sh
source "$HACK_CLUSTER/lib/build.sh"
# shellcheck source=hack/cluster/lib/pki.sh
source "$HACK_CLUSTER/lib/pki.sh"
# shellcheck source=hack/cluster/lib/control-plane.sh
source "$HACK_CLUSTER/lib/control-plane.sh"
# shellcheck source=hack/images/lib.sh
source "$HACK_CLUSTER/../images/lib.sh"
# shellcheck source=hack/cluster/lib/test-servers.sh
source "$HACK_CLUSTER/lib/test-servers.sh"
# shellcheck source=hack/cluster/lib/node.sh
source "$HACK_CLUSTER/lib/node.sh"

[ "$(id -u)" -eq 0 ] || die "must run as root (creates a network interface, mounts, containers)"

STATUS_FAILED=0
# check NAME CMD... : one status line per component.
check() {
  local name=$1; shift
  if "$@" >/dev/null 2>&1; then
    printf '  %-28s ok\n' "$name"
  else
    printf '  %-28s DOWN\n' "$name"
    STATUS_FAILED=1
  fi
}

current_profile() { cat "$CLUSTER_DIR/profile" 2>/dev/null || true; }

cmd_status() {
  local profile; profile=$(current_profile)
  if [ -z "$profile" ]; then
    echo "cluster: not running (start it with: npm run cluster:up)"
    return 1
  fi
  echo "cluster profile: $profile   kubeconfig: $KUBECONFIG_PATH"
  status_control_plane
  [ "$profile" = full ] && status_node
  return $STATUS_FAILED
}

cmd_up() {
  local profile=full
  while [ $# -gt 0 ]; do
    case "$1" in
      --profile) profile=${2:-}; shift 2 || die "--profile needs a value: control-plane or full" ;;
      --profile=*) profile=${1#--profile=}; shift ;;
      *) die "unknown argument '$1' (usage: cluster:up [-- --profile control-plane|full])" ;;
    esac
  done
  case "$profile" in control-plane | full) ;; *) die "unknown profile '$profile': use control-plane or full" ;; esac
  local running; running=$(current_profile)
  # A running full cluster already contains the control-plane profile.
  [ "$running" = full ] && [ "$profile" = control-plane ] && profile=full
  if [ "$running" = "$profile" ] && (cmd_status >/dev/null 2>&1); then
    echo "cluster: already running (profile $profile); kubeconfig: $KUBECONFIG_PATH"
    # the images still follow the tree (a no-op when they are up to date): e2e suites deploy what build.sh pushed last
    [ "$profile" = full ] && build_images
    return 0
  fi
  local start=$SECONDS
  mkdir -p "$CLUSTER_DIR" "$LOG_DIR" "$RUN_DIR"
  up_control_plane
  [ "$running" = full ] || echo control-plane >"$CLUSTER_DIR/profile"
  if [ "$profile" = full ]; then
    up_node
    echo full >"$CLUSTER_DIR/profile"
  fi
  log "cluster up (profile $profile) in $((SECONDS - start))s"
  cat <<EOF
Cluster is running (profile $profile).
  export KUBECONFIG=$KUBECONFIG_PATH
  kubectl get nodes          # kubectl is in $KUBE_BIN
  npm run cluster:status
Node address (pods reach host test servers here): $NODE_IP
EOF
}

cmd_down() {
  down_node
  down_control_plane
  rm -rf "$CLUSTER_DIR/etcd" "$PKI_DIR" "$CONF_DIR" "$RUN_DIR" "$CLUSTER_DIR/profile" "$KUBECONFIG_PATH"
  if ip link show "$NODE_IF" >/dev/null 2>&1; then ip link del "$NODE_IF"; fi
  echo "cluster: down"
}

# Resident memory of the cluster: the daemons we started, containerd's shims, and everything below them.
cmd_memory() {
  local roots
  roots=$(cat "$RUN_DIR"/*.pid 2>/dev/null; pgrep -f "containerd-shim-runc-v2 .*-address $CONTAINERD_SOCK" || true)
  ps -eo pid=,ppid=,rss=,comm= | awk -v roots="$roots" '
    BEGIN { n = split(roots, r, /[ \n]+/); for (i = 1; i <= n; i++) if (r[i] != "") in_set[r[i]] = 1 }
    { pid[NR] = $1; ppid[NR] = $2; rss[NR] = $3; comm[NR] = $4; N = NR }
    END {
      do { changed = 0; for (i = 1; i <= N; i++) if (!(pid[i] in in_set) && (ppid[i] in in_set)) { in_set[pid[i]] = 1; changed = 1 } } while (changed)
      for (i = 1; i <= N; i++) if (pid[i] in in_set) { total += rss[i]; by[comm[i]] += rss[i] }
      for (c in by) printf "%8.1f MiB  %s\n", by[c] / 1024, c
      printf "%8.1f MiB  TOTAL (RSS)\n", total / 1024
    }' | sort -n
}

# The API server going away and coming back (an upgrade, a crash): etcd keeps the state, every client reconnects.
cmd_restart_apiserver() {
  [ "$(current_profile)" != "" ] || die "cluster: not running"
  stop_daemon kube-apiserver
  start_apiserver
  log "kube-apiserver restarted"
}

cmd=${1:-}
shift || true
# One cluster per machine (fixed ports and interfaces): up, down and sync take turns.
if [ "$cmd" = up ] || [ "$cmd" = down ] || [ "$cmd" = sync ] || [ "$cmd" = restart-apiserver ]; then
  mkdir -p /run/cdi-dev
  exec 8>/run/cdi-dev/cluster.lock
  flock -w 1200 8 || die "another cluster:up/down/sync has held /run/cdi-dev/cluster.lock for 20 minutes"
fi
case "$cmd" in
  up) cmd_up "$@" ;;
  down) cmd_down ;;
  status) cmd_status ;;
  sync) cmd_sync "$@" ;;
  memory) cmd_memory ;;
  restart-apiserver) cmd_restart_apiserver ;;
  *) echo "usage: hack/cluster/cluster.sh up [--profile control-plane|full] | down | status | sync | memory | restart-apiserver" >&2; exit 2 ;;
esac
