# OCI images without Docker: umoci builds layers from plain directories, skopeo pushes them to the local registry.
# Sourced by hack/images/build.sh and hack/cluster/cluster.sh (needs hack/cluster/lib/common.sh first).
# shellcheck shell=bash

IMAGES_WORK="$CACHE_ROOT/images"   # OCI layouts and unpacked bundles (outside the repo)
REGISTRY_HOST="localhost:$REGISTRY_PORT"

ensure_image_tools() { ensure_debs umoci skopeo; }

# push_layout LAYOUT TAG NAME : copies LAYOUT:TAG to the local registry as localhost:5000/NAME:TAG.
push_layout() {
  local layout=$1 tag=$2 name=$3
  skopeo copy --quiet --dest-tls-verify=false --dest-compress=false "oci:$layout:$tag" "docker://$REGISTRY_HOST/$name:$tag" >&2
}

# image_exists NAME TAG : is localhost:5000/NAME:TAG in the registry?
image_exists() {
  curl -fsS -o /dev/null -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "http://$REGISTRY_HOST/v2/$1/manifests/$2" 2>/dev/null
}

# build_files_image NAME TAG ROOTFS_DIR ENTRYPOINT... : one layer holding ROOTFS_DIR, then push.
build_files_image() {
  local name=$1 tag=$2 src=$3; shift 3
  local layout="$IMAGES_WORK/$name" bundle="$IMAGES_WORK/$name.bundle"
  rm -rf "$layout" "$bundle"
  mkdir -p "$IMAGES_WORK"
  umoci init --layout "$layout"
  umoci new --image "$layout:$tag"
  umoci unpack --image "$layout:$tag" "$bundle" >/dev/null
  cp -a "$src/." "$bundle/rootfs/"
  umoci repack --image "$layout:$tag" "$bundle"
  local ep=() a
  for a in "$@"; do ep+=(--config.entrypoint "$a"); done
  umoci config --image "$layout:$tag" "${ep[@]}" --config.workingdir / \
    --author cdi-dev --architecture amd64 --os linux
  umoci gc --layout "$layout"
  rm -rf "$bundle"
  push_layout "$layout" "$tag" "$name"
}

# The pause image containerd uses for pod sandboxes, from Kubernetes' own pause.c (in the module cache).
ensure_pause_image() {
  image_exists pause "$PAUSE_TAG" && return 0
  log "building the pause image (localhost:5000/pause:$PAUSE_TAG)"
  local src="$GOMODCACHE/k8s.io/kubernetes@$KUBE_VERSION/build/pause/linux/pause.c" root
  [ -f "$src" ] || (cd "$REPO_ROOT/hack/cluster/go/kube" && go mod download k8s.io/kubernetes)
  root=$(mktemp -d)
  gcc -Os -static -DVERSION="v$PAUSE_TAG-cdi-dev" -o "$root/pause" "$src" || die "cannot compile pause.c"
  strip "$root/pause"
  build_files_image pause "$PAUSE_TAG" "$root" /pause
  rm -rf "$root"
}

ensure_coredns_image() {
  image_exists coredns "$COREDNS_VERSION" && return 0
  ensure_coredns_binary
  log "building localhost:5000/coredns:$COREDNS_VERSION"
  local root; root=$(mktemp -d)
  cp "$COREDNS_BIN/coredns" "$root/coredns"
  build_files_image coredns "$COREDNS_VERSION" "$root" /coredns
  rm -rf "$root"
}
