# Profile full: the node (containerd + runc, CNI bridge, kubelet, kube-proxy), the local registry,
# cluster add-ons (CoreDNS, CSI storage with snapshots) and the host test servers.
# shellcheck shell=bash

NODE_DEBS=(containerd runc containernetworking-plugins iptables conntrack docker-registry skopeo umoci
  e2fsprogs util-linux mount gcc libc6-dev)
CSI_DRIVER_NAME=hostpath.csi.cdi.dev
CSI_DIR="$KUBELET_ROOT/plugins/$CSI_DRIVER_NAME"
CSI_SOCK="$CSI_DIR/csi.sock"
CSI_STATE="$NODE_STATE/csi"

# ---------- registry ----------
# Two docker-registry processes share one storage directory: localhost:5000 for the host (pushes, containerd
# pulls) and $NODE_IP:5000 for pods (e.g. an importer pulling a registry image).
start_registry() {
  mkdir -p "$REGISTRY_DATA" "$CONF_DIR"
  local which addr
  for which in local node; do
    addr=127.0.0.1:$REGISTRY_PORT; [ $which = node ] && addr=$NODE_IP:$REGISTRY_PORT
    daemon_alive "registry-$which" && continue
    cat >"$CONF_DIR/registry-$which.yml" <<EOF
version: 0.1
log: { level: warn }
storage:
  filesystem: { rootdirectory: $REGISTRY_DATA }
  delete: { enabled: true }
http:
  addr: $addr
EOF
    port_busy_addr "$addr" && die "$addr is taken but not by this checkout's registry: is a cluster from another checkout running?"
    start_daemon "registry-$which" docker-registry serve "$CONF_DIR/registry-$which.yml"
    wait_for "registry on $addr" 30 curl -fsS "http://$addr/v2/"
  done
}

port_busy_addr() { ss -Hltn "src ${1%:*} and sport = :${1##*:}" 2>/dev/null | grep -q .; }

# Pods may reach the node (10.99.0.1, local delivery) and each other through the CNI bridge, nothing else: with
# ip_forward on, a pod's packet to any other address would leave through the machine's own interface.
POD_EGRESS_RULE=(FORWARD -s "$POD_CIDR" ! -o "$CNI_BRIDGE" -m comment --comment cdi-dev-pod-egress -j REJECT)
ensure_pod_egress_guard() {
  iptables -C "${POD_EGRESS_RULE[@]}" 2>/dev/null || iptables -I "${POD_EGRESS_RULE[@]}"
}

# ---------- containerd ----------
start_containerd() {
  daemon_alive containerd && return 0
  mkdir -p "$NODE_STATE/containerd" "$NODE_RUN/containerd" "$NODE_STATE/cni/net.d" "$CONF_DIR/certs.d/localhost:$REGISTRY_PORT"
  cat >"$CONF_DIR/certs.d/localhost:$REGISTRY_PORT/hosts.toml" <<EOF
server = "http://localhost:$REGISTRY_PORT"
[host."http://localhost:$REGISTRY_PORT"]
  capabilities = ["pull", "resolve"]
EOF
  cat >"$CONF_DIR/containerd.toml" <<EOF
version = 2
root = "$NODE_STATE/containerd"
state = "$NODE_RUN/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$CONTAINERD_SOCK"
[ttrpc]
  address = "$CONTAINERD_SOCK.ttrpc"
[debug]
  level = "warn"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost:$REGISTRY_PORT/pause:$PAUSE_TAG"
  enable_cdi = false
  restrict_oom_score_adj = true  # this machine denies negative oom_score_adj even to root
  device_ownership_from_security_context = true  # Block PVCs owned by runAsUser: non-root importers (uid 107) write /dev/cdi-block-volume, as upstream CDI requires
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$NODE_STATE/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$CONF_DIR/certs.d"
EOF
  cat >"$NODE_STATE/cni/net.d/10-cdi-bridge.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "cdi-dev",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$CNI_BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$NODE_STATE/cni/ipam",
        "ranges": [[{ "subnet": "$POD_CIDR" }]],
        "routes": [{ "dst": "0.0.0.0/0" }]
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
EOF
  start_daemon containerd /usr/bin/containerd --config "$CONF_DIR/containerd.toml"
  wait_for containerd 30 ctr --address "$CONTAINERD_SOCK" version
}

# ---------- kubelet ----------
start_kubelet() {
  daemon_alive kubelet && return 0
  mkdir -p "$KUBELET_ROOT"
  printf 'nameserver %s\n' "$NODE_IP" >"$CONF_DIR/resolv.conf"
  cat >"$CONF_DIR/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
healthzBindAddress: 127.0.0.1
healthzPort: 10248
readOnlyPort: 0
authentication:
  anonymous: { enabled: false }
  webhook: { enabled: true }
  x509: { clientCAFile: $PKI_DIR/ca.crt }
authorization: { mode: Webhook }
cgroupDriver: cgroupfs
failCgroupV1: false
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
clusterDNS: [$DNS_SVC_IP]
clusterDomain: cluster.local
resolvConf: $CONF_DIR/resolv.conf
failSwapOn: false
serializeImagePulls: false
imageGCHighThresholdPercent: 100
evictionHard: { memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%" }
evictionPressureTransitionPeriod: 5s
protectKernelDefaults: false
makeIPTablesUtilChains: false
syncFrequency: 10s
fileCheckFrequency: 10s
volumeStatsAggPeriod: 0s
EOF
  start_daemon kubelet "$KUBE_BIN/kubelet" --config "$CONF_DIR/kubelet.yaml" \
    --kubeconfig "$CONF_DIR/kubelet.kubeconfig" --root-dir "$KUBELET_ROOT" \
    --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" --v=1
  wait_for kubelet 60 curl -fsS http://127.0.0.1:10248/healthz
}

# ---------- kube-proxy ----------
start_kube_proxy() {
  daemon_alive kube-proxy && return 0
  cat >"$CONF_DIR/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: { kubeconfig: $CONF_DIR/kube-proxy.kubeconfig }
hostnameOverride: $NODE_NAME
bindAddress: $NODE_IP
clusterCIDR: $POD_CIDR
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: ["$NODE_IP/32"]
iptables: { localhostNodePorts: false }
conntrack: { maxPerCore: 0 }
EOF
  start_daemon kube-proxy "$KUBE_BIN/kube-proxy" --config "$CONF_DIR/kube-proxy.yaml" --v=1
  wait_for kube-proxy 60 curl -fsS http://127.0.0.1:10256/healthz
}

start_scheduler() {
  daemon_alive kube-scheduler && return 0
  local kcfg="$CONF_DIR/scheduler.kubeconfig"
  start_daemon kube-scheduler "$KUBE_BIN/kube-scheduler" --kubeconfig "$kcfg" \
    --authentication-kubeconfig "$kcfg" --authorization-kubeconfig "$kcfg" \
    --bind-address 127.0.0.1 --leader-elect=false --v=1
  wait_for kube-scheduler 60 curl -fsSk https://127.0.0.1:10259/healthz
}

# ---------- storage: the harness CSI driver + Go-built snapshot controller, snapshotter and resizer ----------
start_storage() {
  ensure_csi_binaries
  local crd="$GOMODCACHE/github.com/kubernetes-csi/external-snapshotter/client/v8@$CSI_SNAPSHOTTER_VERSION/config/crd"
  [ -d "$crd" ] || (cd "$REPO_ROOT/hack/cluster/go/csi" && go mod download github.com/kubernetes-csi/external-snapshotter/client/v8)
  kc apply --server-side -f "$crd/snapshot.storage.k8s.io_volumesnapshotclasses.yaml" \
    -f "$crd/snapshot.storage.k8s.io_volumesnapshotcontents.yaml" \
    -f "$crd/snapshot.storage.k8s.io_volumesnapshots.yaml" >/dev/null
  kc wait --for condition=established --timeout=60s crd/volumesnapshots.snapshot.storage.k8s.io >/dev/null
  mkdir -p "$CSI_DIR" "$KUBELET_ROOT/plugins_registry" "$CSI_STATE"
  local kcfg="$CONF_DIR/addons.kubeconfig"
  daemon_alive csi-driver || start_supervised csi-driver env CSI_DRIVER_NAME="$CSI_DRIVER_NAME" CSI_NODE_NAME="$NODE_NAME" \
    CSI_SOCKET="$CSI_SOCK" CSI_REGISTRATION_SOCKET="$KUBELET_ROOT/plugins_registry/$CSI_DRIVER_NAME-reg.sock" \
    CSI_STATE_DIR="$CSI_STATE" KUBE_SERVER="https://$NODE_IP:$APISERVER_PORT" KUBE_CA="$PKI_DIR/ca.crt" \
    KUBE_CERT="$PKI_DIR/addons.crt" KUBE_KEY="$PKI_DIR/addons.key" \
    "$REPO_ROOT/node_modules/.bin/node" "$REPO_ROOT/hack/cluster/csi/driver.ts"
  wait_for "CSI driver socket" 30 test -S "$CSI_SOCK"
  daemon_alive snapshot-controller || start_supervised snapshot-controller "$CSI_BIN/snapshot-controller" \
    --kubeconfig "$kcfg" --leader-election=false --v=2
  daemon_alive csi-snapshotter || start_supervised csi-snapshotter "$CSI_BIN/csi-snapshotter" \
    --kubeconfig "$kcfg" --csi-address "$CSI_SOCK" --leader-election=false --v=2
  daemon_alive csi-resizer || start_supervised csi-resizer "$CSI_BIN/csi-resizer" \
    --kubeconfig "$kcfg" --csi-address "$CSI_SOCK" --leader-election=false --v=2
  sed "s/__DRIVER__/$CSI_DRIVER_NAME/g" "$REPO_ROOT/hack/cluster/manifests/storage.yaml" | kc apply -f - >/dev/null
  wait_for "CSI driver registration with the kubelet" 60 \
    sh -c "kubectl --kubeconfig '$KUBECONFIG_PATH' get csinode '$NODE_NAME' -o jsonpath='{.spec.drivers[*].name}' | grep -q '$CSI_DRIVER_NAME'"
}

start_coredns() {
  ensure_coredns_image
  sed -e "s/__DNS_SVC_IP__/$DNS_SVC_IP/g" -e "s/__COREDNS_VERSION__/$COREDNS_VERSION/g" \
    "$REPO_ROOT/hack/cluster/manifests/coredns.yaml" | kc apply -f - >/dev/null
}

up_node() {
  ensure_debs "${NODE_DEBS[@]}"
  ensure_image_tools
  sysctl -qw net.ipv4.ip_forward=1
  [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ] && sysctl -qw net.bridge.bridge-nf-call-iptables=1
  ensure_pod_egress_guard
  start_registry
  ensure_pause_image
  start_scheduler
  if ! daemon_alive containerd && ! daemon_alive kubelet; then
    cleanup_node_leftovers
    [ "${FRESH_ETCD:-0}" = 1 ] && rm -rf "$CSI_STATE"
  fi
  start_containerd
  start_kubelet
  start_kube_proxy
  wait_for "node $NODE_NAME Ready" 120 kc wait --for condition=Ready --timeout=5s "node/$NODE_NAME"
  start_storage
  start_coredns
  kc -n kube-system rollout status deploy/coredns --timeout=180s >/dev/null || die "CoreDNS did not become ready (kubectl -n kube-system describe pod -l k8s-app=kube-dns)"
  up_test_servers
  build_images
}

status_node() {
  check kube-scheduler curl -fsSk https://127.0.0.1:10259/healthz
  check containerd ctr --address "$CONTAINERD_SOCK" version
  check kubelet curl -fsS http://127.0.0.1:10248/healthz
  check kube-proxy curl -fsS http://127.0.0.1:10256/healthz
  check "node $NODE_NAME Ready" kc wait --for condition=Ready --timeout=2s "node/$NODE_NAME"
  check "registry localhost:$REGISTRY_PORT" curl -fsS "http://localhost:$REGISTRY_PORT/v2/"
  check "registry $NODE_IP:$REGISTRY_PORT" curl -fsS "http://$NODE_IP:$REGISTRY_PORT/v2/"
  check "csi-driver ($CSI_DRIVER_NAME)" daemon_alive csi-driver
  check snapshot-controller daemon_alive snapshot-controller
  check csi-snapshotter daemon_alive csi-snapshotter
  check csi-resizer daemon_alive csi-resizer
  check coredns kc -n kube-system wait --for condition=Available --timeout=2s deploy/coredns
  status_test_servers
}

# Stops pods first (containerd tasks, mounts, loop devices), then the daemons, then the network.
down_node() {
  [ -d "$RUN_DIR" ] || return 0
  down_test_servers
  if daemon_alive kubelet && kc get --raw /readyz >/dev/null 2>&1; then
    # let the kubelet unmount volumes the proper way (CSI NodeUnpublish) before it goes
    kc delete pods --all --all-namespaces --grace-period=1 --wait=false >/dev/null 2>&1 || true
    local i
    for i in $(seq 1 40); do # until no CSI volume is published into a pod any more
      grep -qE 'kubernetes.io~csi|volumeDevices/publish' /proc/self/mountinfo || break
      sleep 0.5
    done
  fi
  stop_daemon kube-proxy
  stop_daemon kubelet
  if daemon_alive containerd; then
    local ns=k8s.io id
    for id in $(ctr --address "$CONTAINERD_SOCK" -n "$ns" tasks ls -q 2>/dev/null); do
      ctr --address "$CONTAINERD_SOCK" -n "$ns" tasks kill -s KILL "$id" >/dev/null 2>&1 || true
    done
    sleep 1
    for id in $(ctr --address "$CONTAINERD_SOCK" -n "$ns" tasks ls -q 2>/dev/null); do
      ctr --address "$CONTAINERD_SOCK" -n "$ns" tasks delete -f "$id" >/dev/null 2>&1 || true
    done
  fi
  stop_daemon csi-resizer
  stop_daemon csi-snapshotter
  stop_daemon snapshot-controller
  stop_daemon csi-driver
  stop_daemon containerd
  stop_daemon kube-scheduler
  stop_daemon registry-local
  stop_daemon registry-node
  cleanup_node_leftovers
  rm -rf "$CSI_STATE"
}

# Leftovers of a node that was not shut down cleanly (a killed session, a crash): pod and CSI mounts,
# loop devices, CNI network namespaces and IP allocations, kube-proxy rules, the kubelet's state.
cleanup_node_leftovers() {
  local m
  for m in $(awk '{print $5}' /proc/self/mountinfo | grep -E "^($KUBELET_ROOT|$CSI_STATE|$NODE_RUN|$NODE_STATE)/" | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  losetup -nO NAME,BACK-FILE 2>/dev/null | awk -v d="$CSI_STATE/" 'index($2, d) == 1 {print $1}' | xargs -r -n1 losetup -d 2>/dev/null || true
  for m in $(ip netns list 2>/dev/null | awk '/^cni-/{print $1}'); do ip netns del "$m" 2>/dev/null || true; done
  if [ -x "$KUBE_BIN/kube-proxy" ]; then "$KUBE_BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true; fi
  while iptables -D "${POD_EGRESS_RULE[@]}" 2>/dev/null; do :; done
  if ip link show "$CNI_BRIDGE" >/dev/null 2>&1; then ip link del "$CNI_BRIDGE"; fi
  rm -rf "$NODE_STATE/cni/ipam" "$KUBELET_ROOT" "$NODE_STATE/containerd"
  # Volumes stay (etcd may still hold their PVs: the same checkout restarting); nothing is published any more.
  if [ -d "$CSI_STATE/volumes" ]; then
    node -e 'const fs = require("fs"); for (const f of process.argv.slice(1)) { const v = JSON.parse(fs.readFileSync(f, "utf8")); v.published = {}; fs.writeFileSync(f, JSON.stringify(v)); }' \
      $(find "$CSI_STATE/volumes" -name '*.json') 2>/dev/null || true
  fi
}

build_images() {
  bash "$REPO_ROOT/hack/images/build.sh" || die "image build failed (hack/images/build.sh)"
}

# `npm run cluster:sync`: rebuild the project's images, push them, and (re)deploy CDI from deploy/ with them.
# cluster:up only builds and pushes: a CDI controller left running would also reconcile other suites' objects.
cmd_sync() {
  [ "$(current_profile)" = full ] || die "sync needs the full cluster: npm run cluster:up"
  [ "${1:-}" = --undeploy ] || build_images
  bash "$REPO_ROOT/hack/cluster/deploy-cdi.sh" "$@" || die "deploying CDI failed (hack/cluster/deploy-cdi.sh)"
}

