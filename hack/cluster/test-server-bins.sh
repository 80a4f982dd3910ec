#!/usr/bin/env bash
# Builds (once, cached in ~/.cache/cdi-dev/) the S3 and GCS test servers that the cluster runs, and prints their paths
# as JSON: {"s3":"…/versitygw","gcs":"…/fake-gcs-server"}. The importer's integration tests (test/importer/sources/)
# start their own instances of these on 127.0.0.1 with it; no cluster is needed.
set -euo pipefail
HACK_CLUSTER=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=hack/cluster/lib/common.sh
source "$HACK_CLUSTER/lib/common.sh"
# shellcheck source=hack/cluster/lib/build.sh
source "$HACK_CLUSTER/lib/build.sh"
# shellcheck source=hack/cluster/lib/test-servers.sh
source "$HACK_CLUSTER/lib/test-servers.sh"
build_go_tool s3 github.com/versity/versitygw/cmd/versitygw "$S3_BIN" >&2
build_go_tool gcs github.com/fsouza/fake-gcs-server "$GCS_BIN" >&2
printf '{"s3":"%s","gcs":"%s"}\n' "$S3_BIN" "$GCS_BIN"
