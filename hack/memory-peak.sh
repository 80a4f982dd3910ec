#!/usr/bin/env bash
# Runs a command inside a memory cgroup of LIMIT bytes (default 629145600 = 600 MiB) and reports what the cgroup
# saw: the peak usage (page cache included: a 1 GiB write fills the limit with reclaimable cache), the peak of
# anonymous memory (sampled every 50 ms), how often the limit was hit (and reclaimed), and OOM kills during the run.
# Needs root and a cgroup v1 memory controller at /sys/fs/cgroup/memory, or cgroup v2 with memory enabled.
#
#   sudo hack/memory-peak.sh node bin/cdi.js import http://127.0.0.1:8000/disk.qcow2 --to /tmp/out.img --no-progress
set -euo pipefail
LIMIT=${LIMIT:-629145600}
NAME=${NAME:-cdi-memory-peak}
if [[ -e /sys/fs/cgroup/memory/memory.limit_in_bytes ]]; then
  CG=/sys/fs/cgroup/memory/$NAME
  mkdir -p "$CG"
  echo "$LIMIT" >"$CG/memory.limit_in_bytes"
  echo 0 >"$CG/memory.max_usage_in_bytes"
  echo 0 >"$CG/memory.failcnt"
  peak_file=memory.max_usage_in_bytes events=memory.oom_control anon=total_rss hits=memory.failcnt
else
  CG=/sys/fs/cgroup/$NAME
  mkdir -p "$CG"
  echo "$LIMIT" >"$CG/memory.max"
  peak_file=memory.peak events=memory.events anon=anon hits=
fi
oom() { awk '$1=="oom_kill"{print $2}' "$CG/$events"; }
kills_before=$(oom)
bash -c 'echo $$ >"$0/cgroup.procs"; exec /usr/bin/time -f "time: %e s, max RSS of the largest process %M KB" "$@"' "$CG" "$@" &
pid=$!
peak_anon=0
while kill -0 "$pid" 2>/dev/null; do
  a=$(awk -v k="$anon" '$1==k{print $2}' "$CG/memory.stat")
  ((a > peak_anon)) && peak_anon=$a
  sleep 0.05
done
rc=0
wait "$pid" || rc=$?
peak=$(cat "$CG/$peak_file" 2>/dev/null || echo 0)
echo "exit $rc; limit $((LIMIT >> 20)) MiB; $peak_file=$peak ($((peak >> 20)) MiB); peak anonymous $((peak_anon >> 20)) MiB;" \
  "${hits:+limit hit $(cat "$CG/$hits") times; }OOM kills during the run: $(($(oom) - kills_before))"
