# Host test servers for later issues' tests (profile full), all on the node address $NODE_IP that pods reach.
# What listens where is written to .cluster/test-servers/test-servers.json (read it, don't hard-code ports):
#   file servers  http://$NODE_IP:8081 (plain), :8082 (basic auth), https://$NODE_IP:8443 (test CA)
#                 serving .cluster/test-servers/files/ (tests drop their fixtures there)
#   registries    $NODE_IP:5000 plain (the same storage as localhost:5000), :5443 TLS (test CA), :5001 htpasswd auth
#   S3            versitygw (posix backend) http://$NODE_IP:9000, bucket cdi-test
#   GCS           fake-gcs-server http://$NODE_IP:4443, bucket cdi-test
# shellcheck shell=bash

VERSITYGW_VERSION=v1.8.0
FAKE_GCS_VERSION=v1.56.1
TS_DIR="$CLUSTER_DIR/test-servers"
S3_BIN="$CACHE_ROOT/versitygw-$VERSITYGW_VERSION/bin/versitygw"
GCS_BIN="$CACHE_ROOT/fake-gcs-server-$FAKE_GCS_VERSION/bin/fake-gcs-server"

# build_go_tool DIR PKG OUT : one cached go build of a wrapper module's program.
build_go_tool() {
  local dir=$1 pkg=$2 out=$3 start=$SECONDS
  [ -x "$out" ] && return 0
  ensure_go
  log "building $pkg"
  mkdir -p "$(dirname "$out")"
  (cd "$REPO_ROOT/hack/cluster/go/$dir" && nice -n 10 go build "${GO_FLAGS_BUILD[@]}" -o "$out.tmp" "$pkg") \
    || die "building $pkg failed"
  mv "$out.tmp" "$out"
  log "built $(basename "$out") in $((SECONDS - start))s"
}

ts_json() { node -e "const j=JSON.parse(require('fs').readFileSync(process.argv[1],'utf8'));console.log(eval('j.'+process.argv[2]))" "$TS_DIR/test-servers.json" "$1"; }

up_test_servers() {
  ensure_debs apache2-utils
  build_go_tool s3 github.com/versity/versitygw/cmd/versitygw "$S3_BIN"
  build_go_tool gcs github.com/fsouza/fake-gcs-server "$GCS_BIN"
  mkdir -p "$TS_DIR"
  if ! daemon_alive test-servers; then
    rm -f "$TS_DIR/test-servers.json"
    start_daemon test-servers "$REPO_ROOT/node_modules/.bin/node" "$REPO_ROOT/hack/cluster/test-servers.ts" "$TS_DIR" "$NODE_IP"
    wait_for "test file servers" 30 test -s "$TS_DIR/test-servers.json"
  fi
  # registry variants, sharing the plain registry's storage
  if ! daemon_alive registry-tls; then
    cat >"$CONF_DIR/registry-tls.yml" <<EOF
version: 0.1
log: { level: warn }
storage:
  filesystem: { rootdirectory: $REGISTRY_DATA }
  delete: { enabled: true }
http:
  addr: $NODE_IP:5443
  tls:
    certificate: $TS_DIR/pki/tls.crt
    key: $TS_DIR/pki/tls.key
EOF
    start_daemon registry-tls docker-registry serve "$CONF_DIR/registry-tls.yml"
  fi
  if ! daemon_alive registry-auth; then
    htpasswd -Bbc "$TS_DIR/htpasswd" "$(ts_json registry.auth.user)" "$(ts_json registry.auth.password)" 2>/dev/null
    cat >"$CONF_DIR/registry-auth.yml" <<EOF
version: 0.1
log: { level: warn }
storage:
  filesystem: { rootdirectory: $REGISTRY_DATA }
  delete: { enabled: true }
auth:
  htpasswd: { realm: cdi-test, path: $TS_DIR/htpasswd }
http:
  addr: $NODE_IP:5001
EOF
    start_daemon registry-auth docker-registry serve "$CONF_DIR/registry-auth.yml"
  fi
  if ! daemon_alive s3; then
    mkdir -p "$TS_DIR/s3/cdi-test" "$TS_DIR/meta-s3"  # versitygw: not inside (nor a string prefix match of) the root
    start_daemon s3 env ROOT_ACCESS_KEY_ID="$(ts_json s3.accessKeyId)" ROOT_SECRET_ACCESS_KEY="$(ts_json s3.secretAccessKey)" \
      "$S3_BIN" --port "$NODE_IP:9000" posix --sidecar "$TS_DIR/meta-s3" "$TS_DIR/s3"
  fi
  if ! daemon_alive gcs; then
    mkdir -p "$TS_DIR/gcs/cdi-test"
    start_daemon gcs "$GCS_BIN" -scheme http -host "$NODE_IP" -port 4443 -public-host "$NODE_IP:4443" \
      -backend filesystem -filesystem-root "$TS_DIR/gcs" -log-level warn
  fi
  wait_for "TLS registry" 30 curl -fsS --cacert "$TS_DIR/pki/ca.crt" "https://$NODE_IP:5443/v2/"
  wait_for "auth registry" 30 curl -fsS -u "$(ts_json registry.auth.user):$(ts_json registry.auth.password)" "http://$NODE_IP:5001/v2/"
  wait_for "S3 server" 30 curl -sS -o /dev/null "http://$NODE_IP:9000/"
  wait_for "GCS emulator" 30 curl -fsS "http://$NODE_IP:4443/storage/v1/b"
}

status_test_servers() {
  check "test file server (http)" curl -sS -o /dev/null "http://$NODE_IP:8081/"
  check "test file server (https)" daemon_alive test-servers
  check "registry TLS $NODE_IP:5443" curl -fsS --cacert "$TS_DIR/pki/ca.crt" "https://$NODE_IP:5443/v2/"
  check "registry auth $NODE_IP:5001" daemon_alive registry-auth
  check "S3 (versitygw) $NODE_IP:9000" curl -sS -o /dev/null "http://$NODE_IP:9000/"
  check "GCS (fake-gcs) $NODE_IP:4443" curl -fsS "http://$NODE_IP:4443/storage/v1/b"
}

down_test_servers() {
  local d
  for d in gcs s3 registry-auth registry-tls test-servers; do stop_daemon "$d"; done
}
