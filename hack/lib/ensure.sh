# Sourced by hack/run.sh: installs what a command needs, idempotently, and puts Node 26 first on PATH.
# shellcheck shell=bash

repo_root() { cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd; }

# npm packages (Node 26 itself comes from the `node` devDependency).
ensure_node_modules() {
  local root; root=$(repo_root)
  if [ ! -x "$root/node_modules/.bin/node" ] || [ "$root/package-lock.json" -nt "$root/node_modules/.package-lock.json" ]; then
    echo "==> npm ci" >&2
    (cd "$root" && npm ci --no-audit --no-fund >&2)
  fi
  export PATH="$root/node_modules/.bin:$PATH"
}

# Debian packages, installed only when missing. Usage: ensure_debs pkg...
ensure_debs() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "==> apt-get install ${missing[*]}" >&2
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# What the importer data path needs on the host (and in its image).
DATA_PATH_DEBS=(qemu-utils nbdkit xz-utils zstd curl ca-certificates openssl)

# What the bench adds: nginx serves its images (bench/nginx.ts).
BENCH_DEBS=(nginx-light)

# What the registry/S3/GCS source tests need on the host (test/importer/sources/): a real registry, skopeo to push
# the images they build, htpasswd for its basic auth. (versitygw and fake-gcs-server are built from the Go module
# proxy by hack/cluster/test-server-bins.sh.)
SOURCE_TEST_DEBS=(docker-registry skopeo apache2-utils)

# What the monitoring tests need: promtool (test/monitoring/rules.test.ts) and prometheus itself (the scrape e2e).
MONITORING_TEST_DEBS=(prometheus)

# What the vddk tests build their stand-ins with: they compile an nbdkit plugin standing in for nbdkit's vddk
# plugin + VDDK (test/support/vddk/); Go (for the vCenter stand-in) comes with this kind of machine (/usr/local/go).
VDDK_TEST_DEBS=(gcc nbdkit-plugin-dev)
