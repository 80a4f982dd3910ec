# Builds (once, cached under ~/.cache/cdi-dev/) the Go programs the cluster runs.
# shellcheck shell=bash

GO_FLAGS_BUILD=(-trimpath "-ldflags=-s -w")

ensure_go() {
  command -v go >/dev/null || die "go not found: the Go toolchain (/usr/local/go) is needed to build Kubernetes"
}

# One `go build` for every Kubernetes binary plus etcd, so the shared packages compile once.
ensure_kube_binaries() {
  local want=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl etcd) b missing=0
  for b in "${want[@]}"; do [ -x "$KUBE_BIN/$b" ] || missing=1; done
  [ $missing -eq 0 ] && return 0
  ensure_go
  grep -q "k8s.io/kubernetes $KUBE_VERSION" "$REPO_ROOT/hack/cluster/go/kube/go.mod" \
    || die "hack/cluster/go/kube/go.mod does not pin k8s.io/kubernetes $KUBE_VERSION"
  log "building Kubernetes $KUBE_VERSION and etcd $ETCD_VERSION (cold: about 5 minutes on 2 cores; cached afterwards)"
  local tmp="$KUBE_BIN.tmp.$$" start=$SECONDS
  mkdir -p "$tmp"
  local v=${KUBE_VERSION#v} x=k8s.io/component-base/version c=k8s.io/client-go/pkg/version
  local minor vflags
  minor=$(echo "$v" | cut -d. -f2)
  vflags="-X $x.gitVersion=$KUBE_VERSION -X $x.gitMajor=${v%%.*} -X $x.gitMinor=$minor"
  vflags+=" -X $x.gitTreeState=clean -X $x.buildDate=1970-01-01T00:00:00Z"
  vflags+=" -X $c.gitVersion=$KUBE_VERSION -X $c.gitMajor=${v%%.*} -X $c.gitMinor=$minor"
  (cd "$REPO_ROOT/hack/cluster/go/kube" && nice -n 10 go build -trimpath "-ldflags=-s -w $vflags" -o "$tmp/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy \
    k8s.io/kubernetes/cmd/kubectl ./cmd/etcd) || { rm -rf "$tmp"; die "Kubernetes build failed"; }
  mkdir -p "$KUBE_BIN"
  mv "$tmp"/* "$KUBE_BIN/" && rmdir "$tmp"
  log "Kubernetes binaries built in $((SECONDS - start))s into $KUBE_BIN"
}

# CSI sidecars and the snapshot controller: one wrapper module, one go build.
ensure_csi_binaries() {
  local want=(csi-resizer csi-snapshotter snapshot-controller) b missing=0
  for b in "${want[@]}"; do [ -x "$CSI_BIN/$b" ] || missing=1; done
  [ $missing -eq 0 ] && return 0
  ensure_go
  log "building CSI sidecars (resizer $CSI_RESIZER_VERSION, snapshotter and snapshot-controller $CSI_SNAPSHOTTER_VERSION)"
  local tmp="$CSI_BIN.tmp.$$" start=$SECONDS
  mkdir -p "$tmp"
  (cd "$REPO_ROOT/hack/cluster/go/csi" && nice -n 10 go build "${GO_FLAGS_BUILD[@]}" -o "$tmp/" \
    github.com/kubernetes-csi/external-resizer/v2/cmd/csi-resizer \
    github.com/kubernetes-csi/external-snapshotter/v8/cmd/csi-snapshotter \
    github.com/kubernetes-csi/external-snapshotter/v8/cmd/snapshot-controller) \
    || { rm -rf "$tmp"; die "CSI sidecar build failed"; }
  mkdir -p "$CSI_BIN"
  mv "$tmp"/* "$CSI_BIN/" && rmdir "$tmp"
  log "CSI sidecars built in $((SECONDS - start))s into $CSI_BIN"
}

ensure_coredns_binary() {
  [ -x "$COREDNS_BIN/coredns" ] && return 0
  ensure_go
  log "building CoreDNS $COREDNS_VERSION"
  local start=$SECONDS
  mkdir -p "$COREDNS_BIN"
  (cd "$REPO_ROOT/hack/cluster/go/coredns" && CGO_ENABLED=0 nice -n 10 go build "${GO_FLAGS_BUILD[@]}" \
    -o "$COREDNS_BIN/coredns.tmp" github.com/coredns/coredns) || die "CoreDNS build failed"
  mv "$COREDNS_BIN/coredns.tmp" "$COREDNS_BIN/coredns"
  log "CoreDNS built in $((SECONDS - start))s"
}
