#!/usr/bin/env bash
# (Re)deploys CDI into the local cluster through the operator, as an administrator does: the release manifests
# (cdi-operator.yaml, then cdi-cr.yaml) rendered for the images hack/images/build.sh pushed (the content tag from
# .cluster/images.env, pulled IfNotPresent, version v0.1.0-<tag>). Applying a newer build's cdi-operator.yaml over a
# running one is an upgrade: the operator rolls the components and the CDI resource's observedVersion follows.
# Run by `npm run cluster:sync`; `npm run cluster:sync -- --undeploy` deletes the CDI resource (the operator removes
# everything it installed) and then the operator.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=hack/cluster/lib/common.sh
source "$HERE/lib/common.sh"

NODE_BIN="$REPO_ROOT/node_modules/node/bin/node"
[ -x "$NODE_BIN" ] || die "node_modules/node/bin/node missing: run npm ci"
[ -f "$CLUSTER_DIR/images.env" ] || die "$CLUSTER_DIR/images.env missing: build the images first (hack/images/build.sh)"
# shellcheck disable=SC1091
source "$CLUSTER_DIR/images.env"
TAG=${CDI_IMAGE_TAG:?images.env has no CDI_IMAGE_TAG}
VERSION="v0.1.0-$TAG"
OUT="$CLUSTER_DIR/release"
rm -rf "$OUT"
"$NODE_BIN" "$REPO_ROOT/hack/gen-manifests.ts" --out "$OUT" --registry "${CDI_IMAGE_REGISTRY:-localhost:5000}" \
  --tag "$TAG" --pull-policy IfNotPresent --version "$VERSION" >/dev/null

if [ "${1:-}" = --undeploy ]; then
  if kc get cdi cdi >/dev/null 2>&1; then
    log "deleting the CDI resource (the operator removes what it installed)"
    kc delete cdi cdi --timeout=300s >/dev/null || die "the CDI resource was not removed (kubectl get cdi cdi -o yaml; kubectl -n cdi logs deploy/cdi-operator)"
  fi
  kc delete -f "$OUT/release/cdi-operator.yaml" --ignore-not-found --wait=true >/dev/null
  echo "CDI removed"
  exit 0
fi

log "applying cdi-operator.yaml ($VERSION)"
kc apply --server-side --force-conflicts -f "$OUT/release/cdi-operator.yaml" >/dev/null
kc wait --for condition=established --timeout=60s crd/cdis.cdi.kubevirt.io >/dev/null
kc -n cdi rollout status deployment/cdi-operator --timeout=180s >/dev/null ||
  die "the operator did not become ready (kubectl -n cdi describe deployment/cdi-operator; kubectl -n cdi logs deployment/cdi-operator)"
if ! kc get cdi cdi >/dev/null 2>&1; then
  log "creating the CDI resource (cdi-cr.yaml)"
  kc create -f "$OUT/release/cdi-cr.yaml" >/dev/null
fi
log "waiting for CDI to be Available at $VERSION"
for _ in $(seq 1 300); do
  state=$(kc get cdi cdi -o jsonpath='{.status.phase} {.status.observedVersion}' 2>/dev/null || true)
  [ "$state" = "Deployed $VERSION" ] && break
  sleep 1
done
[ "$state" = "Deployed $VERSION" ] ||
  die "CDI did not become Available at $VERSION (now: ${state:-no status}; kubectl get cdi cdi -o yaml; kubectl -n cdi logs deployment/cdi-operator)"
echo "CDI deployed through the operator ($VERSION): $(kc -n cdi get deploy -o name | tr '\n' ' ')"
