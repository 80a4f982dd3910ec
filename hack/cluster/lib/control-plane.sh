# Profile control-plane: etcd + kube-apiserver + kube-controller-manager (like controller-runtime's envtest,
# but with the controller-manager so garbage collection, namespaces and PV binding work).
# shellcheck shell=bash

ensure_node_interface() {
  if ! ip link show "$NODE_IF" >/dev/null 2>&1; then
    log "creating bridge $NODE_IF with the node address $NODE_IP"
    ip link add "$NODE_IF" type bridge || die "cannot create bridge $NODE_IF (needs root and CONFIG_BRIDGE)"
  fi
  ip -4 addr show dev "$NODE_IF" | grep -q "inet $NODE_IP/" || ip addr add "$NODE_IP/24" dev "$NODE_IF"
  ip link set "$NODE_IF" up
}

port_busy() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

start_etcd() {
  daemon_alive etcd && return 0
  port_busy "$ETCD_CLIENT_PORT" && die "port $ETCD_CLIENT_PORT is taken but not by this checkout's etcd: is a cluster from another checkout running? (npm run cluster:down there)"
  [ -d "$CLUSTER_DIR/etcd" ] || FRESH_ETCD=1 # a new cluster: volumes of an older one are orphans
  mkdir -p "$CLUSTER_DIR/etcd"
  start_daemon etcd "$KUBE_BIN/etcd" --name cdi-dev --data-dir "$CLUSTER_DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "cdi-dev=http://127.0.0.1:$ETCD_PEER_PORT" --unsafe-no-fsync --log-level warn
  wait_for etcd 60 curl -fsS "http://127.0.0.1:$ETCD_CLIENT_PORT/health"
}

start_apiserver() {
  daemon_alive kube-apiserver && return 0
  port_busy "$APISERVER_PORT" && die "port $APISERVER_PORT is taken but not by this checkout's kube-apiserver: is a cluster from another checkout running? (npm run cluster:down there)"
  start_daemon kube-apiserver "$KUBE_BIN/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --bind-address "$NODE_IP" --advertise-address "$NODE_IP" --secure-port "$APISERVER_PORT" \
    --tls-cert-file "$PKI_DIR/apiserver.crt" --tls-private-key-file "$PKI_DIR/apiserver.key" \
    --client-ca-file "$PKI_DIR/ca.crt" \
    --kubelet-client-certificate "$PKI_DIR/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$PKI_DIR/apiserver-kubelet-client.key" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$PKI_DIR/sa.pub" --service-account-signing-key-file "$PKI_DIR/sa.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" --authorization-mode Node,RBAC \
    --allow-privileged=true --profiling=false --enable-priority-and-fairness=false \
    --endpoint-reconciler-type lease --kubelet-preferred-address-types InternalIP \
    --requestheader-client-ca-file "$PKI_DIR/front-proxy-ca.crt" \
    --requestheader-allowed-names front-proxy-client \
    --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
    --requestheader-extra-headers-prefix X-Remote-Extra- \
    --proxy-client-cert-file "$PKI_DIR/front-proxy-client.crt" \
    --proxy-client-key-file "$PKI_DIR/front-proxy-client.key" \
    --enable-aggregator-routing=true --v=1
  wait_for kube-apiserver 120 kc get --raw /readyz
}

start_controller_manager() {
  daemon_alive kube-controller-manager && return 0
  local kcfg="$CONF_DIR/controller-manager.kubeconfig"
  start_daemon kube-controller-manager "$KUBE_BIN/kube-controller-manager" \
    --kubeconfig "$kcfg" --authentication-kubeconfig "$kcfg" --authorization-kubeconfig "$kcfg" \
    --bind-address 127.0.0.1 --leader-elect=false \
    --service-account-private-key-file "$PKI_DIR/sa.key" --root-ca-file "$PKI_DIR/ca.crt" \
    --cluster-signing-cert-file "$PKI_DIR/ca.crt" --cluster-signing-key-file "$PKI_DIR/ca.key" \
    --use-service-account-credentials=true --controllers '*,bootstrapsigner,tokencleaner' \
    --allocate-node-cidrs=false --service-cluster-ip-range "$SERVICE_CIDR" --v=1
  wait_for kube-controller-manager 60 curl -fsSk https://127.0.0.1:10257/healthz
}

up_control_plane() {
  ensure_debs openssl curl iproute2
  ensure_kube_binaries
  ensure_pki
  ensure_node_interface
  start_etcd
  start_apiserver
  start_controller_manager
  # The default namespace's service account exists once the controller-manager ran its first sync.
  wait_for "default service account" 60 kc -n default get serviceaccount default
}

status_control_plane() {
  check etcd curl -fsS "http://127.0.0.1:$ETCD_CLIENT_PORT/health"
  check kube-apiserver kc get --raw /readyz
  check kube-controller-manager curl -fsSk https://127.0.0.1:10257/healthz
}

down_control_plane() {
  stop_daemon kube-controller-manager
  stop_daemon kube-apiserver
  stop_daemon etcd
}
