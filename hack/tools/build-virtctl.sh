#!/usr/bin/env bash
# Builds upstream's virtctl (KubeVirt v1.8.4) from the Go module proxy for the compatibility test
# test/integration/upload/virtctl.test.ts; prints the binary's path. Cached in ~/.cache/cdi-dev/virtctl-v1.8.4/.
# v1.9.0 cannot be built (its kubevirt.io/virt-template-* v0.2.0 dependencies are "not available" on the proxy);
# v1.8.4's virt-template-* v0.1.7 download, but the checksum database does not know them (404), hence GONOSUMDB
# for exactly those three modules. About 10 minutes on 2 cores with a cold build cache.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE_ROOT="${CDI_DEV_CACHE:-$HOME/.cache/cdi-dev}"
OUT="$CACHE_ROOT/virtctl-v1.8.4/virtctl"
if [ -x "$OUT" ]; then echo "$OUT"; exit 0; fi
export GOMODCACHE="$CACHE_ROOT/go/mod" GOCACHE="$CACHE_ROOT/go/cache" GOFLAGS=-mod=mod GOTOOLCHAIN=local
export GONOSUMDB=kubevirt.io/virt-template-api,kubevirt.io/virt-template-client-go,kubevirt.io/virt-template-engine
export PATH="/usr/local/go/bin:$PATH"
mkdir -p "$(dirname "$OUT")"
(cd "$HERE/virtctl" && nice -n 10 go build -trimpath -ldflags='-s -w' -o "$OUT.tmp" kubevirt.io/kubevirt/cmd/virtctl) >&2
mv "$OUT.tmp" "$OUT"
echo "$OUT"
