#!/usr/bin/env bash
# One entry point for the README's commands: installs what the command needs, then runs it.
#   hack/run.sh test   the whole test suite (what .ci/run runs)
#   hack/run.sh demo   the end-to-end demo
#   hack/run.sh bench  the benchmarks (as root: each case also runs in a cgroup limited to 0.75 CPU / 600M)
#   hack/run.sh bench:scale  the scale bench on the local full cluster (bench/scale.ts; deploys the images pushed last:
#                            npm run cluster:sync first)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=hack/lib/ensure.sh
source hack/lib/ensure.sh

cmd=${1:-}
shift || true
case "$cmd" in
  test)
    ensure_node_modules
    ensure_debs "${DATA_PATH_DEBS[@]}" "${SOURCE_TEST_DEBS[@]}" "${VDDK_TEST_DEBS[@]}" "${MONITORING_TEST_DEBS[@]}"
    echo "==> typecheck" >&2
    tsc --noEmit
    echo "==> lint" >&2
    eslint .
    # upstream's virtctl for the compatibility tests (test/support/virtctl.ts waits for it): built in the background,
    # niced, beside the cluster's builds and the tests; a no-op once cached
    virtctl_build=$(mktemp -d)/virtctl-build
    # (its own session, so that the EXIT trap stops the go build too when the run ends first)
    setsid bash -c 'bash hack/tools/build-virtctl.sh >"$1.log" 2>&1; echo $? >"$1.rc"' _ "$virtctl_build" &
    virtctl_pid=$!
    export CDI_VIRTCTL_BUILD=$virtctl_build
    echo "==> local cluster (full profile; a no-op when it is already running)" >&2
    # Under CI, a cluster this run started is stopped again at the end, so CI leaves no daemons behind
    # (a developer's cluster stays up for the next run, and for other test runs sharing it).
    if [ "${CI:-}" = true ] && ! bash hack/cluster/cluster.sh status >/dev/null 2>&1; then
      # (quietly: the test runner's summary stays the last thing printed)
      trap 'kill -- "-$virtctl_pid" 2>/dev/null || true; mkdir -p .cluster/logs; bash hack/cluster/cluster.sh down >>.cluster/logs/down.log 2>&1 || true' EXIT
    else
      trap 'kill -- "-$virtctl_pid" 2>/dev/null || true' EXIT
    fi
    # if it fails, the tests still run: the cluster suites then fail with their own messages
    bash hack/cluster/cluster.sh up --profile full || echo "==> cluster:up failed (see .cluster/logs/)" >&2
    echo "==> unit and integration tests (test/cluster: the cluster smoke suite)" >&2
    node --test --test-reporter=spec 'src/**/*.test.ts' 'test/**/*.test.ts' 'bench/**/*.test.ts' "$@"
    ;;
  demo)
    ensure_node_modules
    ensure_debs "${DATA_PATH_DEBS[@]}"
    echo "==> local cluster (full profile; a no-op when it is already running)" >&2
    bash hack/cluster/cluster.sh up --profile full
    echo "==> build the CDI images, push them to localhost:5000, deploy CDI" >&2
    bash hack/cluster/cluster.sh sync
    node hack/demo.ts "$@"
    ;;
  bench)
    ensure_node_modules
    ensure_debs "${DATA_PATH_DEBS[@]}" "${BENCH_DEBS[@]}"
    node bench/run.ts "$@"
    ;;
  bench:scale)
    ensure_node_modules
    ensure_debs "${DATA_PATH_DEBS[@]}"
    bash hack/cluster/cluster.sh status >/dev/null || { echo "bench:scale needs the full cluster: npm run cluster:up" >&2; exit 1; }
    node bench/scale.ts "$@"
    ;;
  *)
    echo "usage: hack/run.sh test|demo|bench|bench:scale" >&2
    exit 2
    ;;
esac
