#!/usr/bin/env bash
# Builds the project's OCI images without Docker and pushes them to the local registry (localhost:5000):
#   localhost:5000/busybox:<ver>           busybox (static) for test and debug pods
#   localhost:5000/cdi-base:<hash>         node 26 + qemu-img + nbdkit (curl plugin, filters) + xz, zstd, openssl,
#                                          bash and GNU coreutils, and their shared libraries, copied from this host
#                                          (ldd), plus busybox for the other tools (grep, sed, tar, vi, ...)
#   localhost:5000/cdi-importer:<tag>      cdi-base + one app layer (src/, bin/, production node_modules)
#   localhost:5000/cdi-controller:<tag>    the same layers, another entrypoint
#   localhost:5000/cdi-operator:<tag>      the same, the operator's entrypoint
#   localhost:5000/cdi-apiserver:<tag>, cdi-uploadproxy:<tag>, cdi-uploadserver:<tag>, cdi-cloner:<tag>
#                                          the same, their entrypoints (cdi-cloner: the host-assisted clone source pod)
# <tag> is "dev" and the app layer's content hash; a code change rebuilds and pushes only the app layer.
# The hash is written to .cluster/images.env (CDI_IMAGE_TAG=...) for deploy scripts.
#   hack/images/build.sh --rev <git-rev>   the app images of another commit (its src/, bin/, package.json; the
#                                          production node_modules of this tree, so its package-lock.json must be
#                                          this tree's): pushed under their content tag only, :dev and images.env
#                                          untouched; prints CDI_IMAGE_TAG=<tag> (the upgrade e2e test uses it)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=hack/lib/ensure.sh
source "$HERE/../lib/ensure.sh"
# shellcheck source=hack/cluster/lib/common.sh
source "$HERE/../cluster/lib/common.sh"
# shellcheck source=hack/images/lib.sh
source "$HERE/lib.sh"

REV=""
if [ "${1:-}" = --rev ]; then
  REV=${2:?--rev needs a git revision}
fi
ensure_debs busybox-static umoci skopeo "${DATA_PATH_DEBS[@]}" ca-certificates
curl -fsS "http://$REGISTRY_HOST/v2/" >/dev/null || die "the local registry on $REGISTRY_HOST is not running (npm run cluster:up)"

BUSYBOX_TAG=$(dpkg-query -W -f='${Version}' busybox-static | sed 's/^[0-9]*://; s/-.*//')

# ---- busybox ----
if ! image_exists busybox "$BUSYBOX_TAG"; then
  log "building localhost:5000/busybox:$BUSYBOX_TAG"
  root=$(mktemp -d)
  mkdir -p "$root/bin" "$root/tmp" "$root/etc"
  cp /bin/busybox "$root/bin/busybox"
  for a in $("$root/bin/busybox" --list); do [ "$a" = busybox ] || ln -s busybox "$root/bin/$a"; done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  chmod 1777 "$root/tmp"
  build_files_image busybox "$BUSYBOX_TAG" "$root" /bin/sh
  rm -rf "$root"
fi
echo "busybox image: $REGISTRY_HOST/busybox:$BUSYBOX_TAG"

# ---- base ----
NODE_BIN="$REPO_ROOT/node_modules/node/bin/node"
[ -x "$NODE_BIN" ] || die "node_modules/node/bin/node missing: run npm ci"
mapfile -t BASE_PROGRAMS < <(command -v qemu-img nbdkit xz zstd openssl prlimit timeout)  # prlimit, timeout: the importer bounds qemu-img/nbdkit with them (GNU options)
# bash and GNU coreutils, as upstream's importer image has them: people and procedures `kubectl exec` into an importer
# and run shell scripts there (bash, GNU option syntax). They go in before busybox, which fills in only what is missing.
mapfile -t GNU_PROGRAMS < <(dpkg -L coreutils | grep -E '/s?bin/[^/]+$' | while read -r f; do if [ -f "$f" ] && [ ! -L "$f" ]; then echo "$f"; fi; done)
GNU_PROGRAMS+=(/bin/bash)
NBDKIT_MODULES=/usr/lib/x86_64-linux-gnu/nbdkit
base_inputs() {
  sha256sum "$NODE_BIN" "${BASE_PROGRAMS[@]}" "${GNU_PROGRAMS[@]}" /bin/busybox "$HERE/build.sh" "$HERE/lib.sh"
  find "$NBDKIT_MODULES" -type f -print0 | sort -z | xargs -0 sha256sum
}
BASE_TAG=$(base_inputs | sha256sum | cut -c1-12)
BASE_LAYOUT="$IMAGES_WORK/cdi-base"

copy_with_libs() { # copy_with_libs ROOT FILE... : files and every shared library they need
  local root=$1 f lib; shift
  for f in "$@"; do
    mkdir -p "$root$(dirname "$f")"
    cp -L "$f" "$root$f"
    for lib in $(ldd "$f" 2>/dev/null | awk '/=> \//{print $3} /^[ \t]*\/lib/{print $1}'); do
      [ -e "$root$lib" ] && continue
      mkdir -p "$root$(dirname "$lib")"
      cp -L "$lib" "$root$lib"
    done
  done
}

if [ ! -f "$BASE_LAYOUT/index.json" ] || ! grep -q "\"$BASE_TAG\"" "$BASE_LAYOUT/index.json"; then
  log "building cdi-base:$BASE_TAG (host binaries and their libraries)"
  root=$(mktemp -d)
  mkdir -p "$root/bin" "$root/tmp" "$root/etc/ssl" "$root/usr/local/bin" "$root/var/tmp" "$root/app"
  copy_with_libs "$root" "${GNU_PROGRAMS[@]}"
  ln -s bash "$root/bin/sh"   # as upstream's image: scripts run by /bin/sh get bash
  cp /bin/busybox "$root/bin/busybox"
  for a in $("$root/bin/busybox" --list); do
    [ -e "$root/bin/$a" ] || [ -e "$root/usr/bin/$a" ] || ln -s busybox "$root/bin/$a"
  done
  copy_with_libs "$root" "${BASE_PROGRAMS[@]}"
  mapfile -t mods < <(find "$NBDKIT_MODULES" -name '*.so')
  copy_with_libs "$root" "${mods[@]}"
  # qemu-img loads block drivers (curl, ssh, ...) from qemu-block-extra modules when present
  if [ -d /usr/lib/x86_64-linux-gnu/qemu ]; then
    mapfile -t qmods < <(find /usr/lib/x86_64-linux-gnu/qemu -name 'block-*.so')
    [ ${#qmods[@]} -eq 0 ] || copy_with_libs "$root" "${qmods[@]}"
  fi
  cp "$NODE_BIN" "$root/usr/local/bin/node"
  strip --strip-debug "$root/usr/local/bin/node"   # the npm binary carries debug info (150 MB)
  for lib in $(ldd "$NODE_BIN" | awk '/=> \//{print $3} /^[ \t]*\/lib/{print $1}'); do
    mkdir -p "$root$(dirname "$lib")"; cp -L "$lib" "$root$lib"
  done
  cp -rL /etc/ssl/certs "$root/etc/ssl/certs"
  cp /etc/ssl/openssl.cnf "$root/etc/ssl/openssl.cnf"
  mkdir -p "$root/usr/lib/ssl" && ln -sf /etc/ssl/openssl.cnf "$root/usr/lib/ssl/openssl.cnf"  # where Debian's openssl looks
  # upstream CDI's importer runs as uid 107
  printf 'root:x:0:0:root:/root:/bin/sh\nqemu:x:107:107:qemu:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' >"$root/etc/passwd"
  printf 'root:x:0:\nqemu:x:107:\nnogroup:x:65534:\n' >"$root/etc/group"
  chmod 1777 "$root/tmp" "$root/var/tmp"
  rm -rf "$BASE_LAYOUT" "$BASE_LAYOUT.bundle"
  umoci init --layout "$BASE_LAYOUT"
  umoci new --image "$BASE_LAYOUT:$BASE_TAG"
  umoci unpack --image "$BASE_LAYOUT:$BASE_TAG" "$BASE_LAYOUT.bundle" >/dev/null
  cp -a "$root/." "$BASE_LAYOUT.bundle/rootfs/"
  umoci repack --image "$BASE_LAYOUT:$BASE_TAG" "$BASE_LAYOUT.bundle"
  umoci config --image "$BASE_LAYOUT:$BASE_TAG" --author cdi-dev --architecture amd64 --os linux \
    --config.env PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --config.workingdir /app
  rm -rf "$BASE_LAYOUT.bundle" "$root"
fi
image_exists cdi-base "$BASE_TAG" || push_layout "$BASE_LAYOUT" "$BASE_TAG" cdi-base
echo "base image: $REGISTRY_HOST/cdi-base:$BASE_TAG"

# ---- app layer: src/, bin/, package.json and the production node_modules ----
SRC_ROOT="$REPO_ROOT"
if [ -n "$REV" ]; then
  git -C "$REPO_ROOT" rev-parse --verify --quiet "$REV^{commit}" >/dev/null || die "--rev $REV is not a commit"
  git -C "$REPO_ROOT" show "$REV:package-lock.json" | cmp -s - "$REPO_ROOT/package-lock.json" ||
    die "--rev $REV has another package-lock.json than this tree: its production node_modules cannot be taken from here"
  SRC_ROOT=$(mktemp -d)
  trap 'rm -rf "$SRC_ROOT"' EXIT
  git -C "$REPO_ROOT" archive "$REV" -- src bin package.json package-lock.json | tar -xf - -C "$SRC_ROOT"
fi
app_files() {
  if [ -n "$REV" ]; then
    (cd "$SRC_ROOT" && find src bin package.json -type f | sort | grep -v '\.test\.ts$' || true)
  else
    (cd "$REPO_ROOT" && git ls-files -co --exclude-standard -- src bin package.json | grep -v '\.test\.ts$' || true)
  fi
}
prod_modules() {
  (cd "$REPO_ROOT" && npm ls --omit=dev --all --parseable 2>/dev/null | sed "s#^$REPO_ROOT/##" | grep '^node_modules/' || true)
}
APP_TAG=$( (
  cd "$SRC_ROOT"
  echo "$BASE_TAG"
  app_files | while read -r f; do [ -f "$f" ] && sha256sum "$f"; done
  sha256sum package-lock.json
) | sha256sum | cut -c1-12)

# one image per entrypoint, of those the tree has (an older commit built with --rev may have fewer)
COMPONENTS=()
for c in importer controller apiserver uploadproxy uploadserver cloner operator; do
  [ -f "$SRC_ROOT/src/cmd/$c.ts" ] && COMPONENTS+=("$c")
done
all_exist() { local c; for c in "${COMPONENTS[@]}"; do image_exists "cdi-$c" "$APP_TAG" || return 1; done; }
if all_exist; then
  echo "app images up to date: ${COMPONENTS[*]} at $APP_TAG"
else
  log "building the app layer ($APP_TAG)"
  layout="$IMAGES_WORK/cdi-app" bundle="$IMAGES_WORK/cdi-app.bundle"
  rm -rf "$layout" "$bundle"
  cp -al "$BASE_LAYOUT" "$layout"
  umoci unpack --image "$layout:$BASE_TAG" "$bundle" >/dev/null
  (cd "$SRC_ROOT" && app_files | while read -r f; do [ -f "$f" ] && echo "$f"; done | tar -cf - -T -) |
    tar -xf - -C "$bundle/rootfs/app"
  for m in $(prod_modules); do
    mkdir -p "$bundle/rootfs/app/$m" && cp -a "$REPO_ROOT/$m/." "$bundle/rootfs/app/$m/"
  done
  umoci repack --image "$layout:$BASE_TAG" --refresh-bundle "$bundle"
  for comp in "${COMPONENTS[@]}"; do
    umoci config --image "$layout:$BASE_TAG" --tag "$comp-$APP_TAG" \
      --config.entrypoint /usr/local/bin/node --config.entrypoint "/app/src/cmd/$comp.ts" \
      --config.user 107:107 --config.workingdir /app
    skopeo copy --quiet --dest-tls-verify=false --dest-compress=false \
      "oci:$layout:$comp-$APP_TAG" "docker://$REGISTRY_HOST/cdi-$comp:$APP_TAG" >&2
  done
  rm -rf "$bundle" "$layout"
  echo "app images: ${COMPONENTS[*]} at $APP_TAG"
fi
if [ -n "$REV" ]; then
  echo "CDI_IMAGE_TAG=$APP_TAG"
  exit 0
fi
for comp in "${COMPONENTS[@]}"; do
  skopeo copy --quiet --src-tls-verify=false --dest-tls-verify=false \
    "docker://$REGISTRY_HOST/cdi-$comp:$APP_TAG" "docker://$REGISTRY_HOST/cdi-$comp:dev"
done
mkdir -p "$CLUSTER_DIR"
printf 'CDI_IMAGE_REGISTRY=%s\nCDI_IMAGE_TAG=%s\nCDI_BASE_TAG=%s\nBUSYBOX_IMAGE=%s\n' \
  "$REGISTRY_HOST" "$APP_TAG" "$BASE_TAG" "$REGISTRY_HOST/busybox:$BUSYBOX_TAG" >"$CLUSTER_DIR/images.env"
