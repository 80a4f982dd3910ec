#!/usr/bin/env bash
# (Re)deploys CDI into the local cluster from deploy/ (generated manifests) with the images hack/images/build.sh
# pushed (:dev, pulled Always). Run by `npm run cluster:sync`; `npm run cluster:sync -- --undeploy` removes it.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=hack/cluster/lib/common.sh
source "$HERE/lib/common.sh"

if [ "${1:-}" = --undeploy ]; then
  kc delete -f "$REPO_ROOT/deploy/cdi" --ignore-not-found --wait=true >/dev/null
  echo "CDI removed (the CRDs stay)"
  exit 0
fi
[ -d "$REPO_ROOT/deploy/crds" ] && [ -d "$REPO_ROOT/deploy/cdi" ] || { echo "deploy/ has no manifests yet: nothing to deploy"; exit 0; }
log "applying deploy/crds and deploy/cdi"
kc apply --server-side --force-conflicts -f "$REPO_ROOT/deploy/crds" >/dev/null
for crd in $(kc apply --dry-run=client -o name -f "$REPO_ROOT/deploy/crds"); do
  kc wait --for condition=established --timeout=60s "$crd" >/dev/null
done
kc apply --server-side --force-conflicts -f "$REPO_ROOT/deploy/cdi" >/dev/null
# :dev moved: restart so the pods pull the new image
kc get -f "$REPO_ROOT/deploy/cdi" -o jsonpath='{range .items[*]}{.kind} {.metadata.namespace} {.metadata.name}{"\n"}{end}' |
  while read -r kind ns name; do
    [ "$kind" = Deployment ] || continue
    kc -n "$ns" rollout restart "deployment/$name" >/dev/null
    kc -n "$ns" rollout status "deployment/$name" --timeout=180s >/dev/null ||
      die "deployment $ns/$name did not become ready (kubectl -n $ns describe deployment/$name; kubectl -n $ns logs deployment/$name)"
  done
echo "CDI deployed: $(kc -n cdi get deploy -o name | tr '\n' ' ')"
