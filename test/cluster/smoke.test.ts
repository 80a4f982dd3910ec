// Smoke suite for the local cluster (profile full): images from the local registry, CSI volumes in both modes,
// snapshots, clones, cluster DNS, and pods reaching a server on the host at the node address.
// hack/run.sh test brings the cluster up before running it.
import assert from 'node:assert/strict';
import { randomBytes, createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startFileServer, type FileServer } from '../support/fileserver.ts';
import {
  apply,
  createNamespace,
  createPvc,
  deleteNamespace,
  getJson,
  imagesEnv,
  kubectl,
  nodeIP,
  requireFullCluster,
  runPod,
  waitFor,
} from './support.ts';

void describe('local cluster (full profile)', () => {
  let ns = '';
  let busybox = '';
  let base = '';

  before(async () => {
    requireFullCluster();
    const env = imagesEnv();
    busybox = env['BUSYBOX_IMAGE'] ?? '';
    base = `${env['CDI_IMAGE_REGISTRY']}/cdi-base:${env['CDI_BASE_TAG']}`;
    ns = await createNamespace('smoke');
  });

  after(async () => {
    if (ns) await deleteNamespace(ns);
  });

  void test('a Deployment runs the harness-built base image (node, qemu-img, nbdkit) pulled from localhost:5000', async () => {
    const script = [
      'qemu-img --version | head -1',
      'nbdkit --version',
      'nbdkit curl --version >/dev/null && echo curl-plugin-ok',
      "exec node -e \"console.log('node', process.version); require('http').createServer((q, s) => s.end('hello from cdi-base')).listen(8080)\"",
    ].join(' && ');
    await apply({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web', namespace: ns },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: 'web' } },
        template: {
          metadata: { labels: { app: 'web' } },
          spec: {
            terminationGracePeriodSeconds: 1,
            containers: [
              {
                name: 'web',
                image: base,
                command: ['/bin/sh', '-c', script],
                ports: [{ containerPort: 8080 }],
                readinessProbe: { httpGet: { path: '/', port: 8080 }, periodSeconds: 1 },
              },
            ],
          },
        },
      },
    });
    await apply({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'web', namespace: ns },
      spec: { selector: { app: 'web' }, ports: [{ port: 80, targetPort: 8080 }] },
    });
    await kubectl(['-n', ns, 'rollout', 'status', 'deployment/web', '--timeout=240s']).catch(
      async (err: Error) => {
        throw new Error(`${err.message}\n${await kubectl(['-n', ns, 'describe', 'pods', '-l', 'app=web'])}`);
      },
    );
    const pods = await getJson(['-n', ns, 'pods', '-l', 'app=web']);
    const pod = (
      pods['items'] as { metadata: { name: string }; status: { containerStatuses: { imageID: string }[] } }[]
    )[0];
    assert.ok(pod, 'the Deployment has a pod');
    assert.match(pod.status.containerStatuses[0]?.imageID ?? '', /^localhost:5000\/cdi-base@sha256:/);
    const logs = await kubectl(['-n', ns, 'logs', pod.metadata.name]);
    assert.match(logs, /qemu-img version/);
    assert.match(logs, /nbdkit \d/);
    assert.match(logs, /curl-plugin-ok/);
    assert.match(logs, /node v26\./);
  });

  void test('a Service name resolves through CoreDNS from a pod, and the Service answers', async () => {
    const svc = await getJson(['-n', ns, 'service', 'web']);
    const clusterIP = (svc['spec'] as { clusterIP: string }).clusterIP;
    // busybox's nslookup asks CoreDNS directly; node (glibc) resolves the short name through the search path.
    // Both retry for a minute: a Service is programmed a moment after its endpoints are ready.
    const fetchScript =
      "(async () => { for (let i = 0; ; i++) { try { console.log(await (await fetch('http://web/')).text()); return; }" +
      ' catch (e) { if (i >= 30) throw e; await new Promise((r) => setTimeout(r, 2000)); } } })()';
    const out = await runPod(ns, 'dns', {
      image: base,
      script:
        `for i in $(seq 1 30); do nslookup web.${ns}.svc.cluster.local > /tmp/ns.out 2>&1 && break; sleep 2; done; ` +
        `cat /tmp/ns.out && node -e "${fetchScript}"`,
    });
    assert.ok(out.includes(clusterIP), `nslookup answered with the Service IP ${clusterIP}:\n${out}`);
    assert.match(out, /hello from cdi-base/);
  });

  void test('a pod reaches a file server on the host at the node address', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'smoke-files-'));
    const content = randomBytes(300_000);
    await writeFile(join(dir, 'blob.bin'), content);
    let srv: FileServer | undefined;
    try {
      srv = await startFileServer({ root: dir, host: nodeIP });
      const out = await runPod(ns, 'fetch', {
        image: busybox,
        script: `wget -qO /tmp/blob ${srv.url}/blob.bin && md5sum /tmp/blob`,
      });
      assert.equal(out.split(/\s+/)[0], createHash('md5').update(content).digest('hex'));
      assert.ok(srv.requests.some((r) => r.path === '/blob.bin' && r.status === 200));
    } finally {
      await srv?.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  void describe('CSI storage', () => {
    const token = randomBytes(16).toString('hex');
    let blockMd5 = '';

    void test('Filesystem PVC: one pod writes a file, another reads it back', async () => {
      await createPvc(ns, 'fs', 'Filesystem', '64Mi');
      await runPod(ns, 'fs-write', {
        image: busybox,
        script: `echo ${token} > /data/token && sync`,
        pvc: { name: 'fs', mode: 'Filesystem' },
      });
      const out = await runPod(ns, 'fs-read', {
        image: busybox,
        script: 'cat /data/token && df -k /data | tail -1',
        pvc: { name: 'fs', mode: 'Filesystem' },
      });
      assert.equal(out.split('\n')[0], token);
    });

    void test('Block PVC: one pod writes bytes to the device, another reads the same bytes', async () => {
      await createPvc(ns, 'blk', 'Block', '32Mi');
      const w = await runPod(ns, 'blk-write', {
        image: busybox,
        script:
          'dd if=/dev/urandom of=/dev/xvda bs=1M count=4 2>/dev/null && sync && dd if=/dev/xvda bs=1M count=4 2>/dev/null | md5sum',
        pvc: { name: 'blk', mode: 'Block' },
      });
      blockMd5 = w.split(/\s+/)[0] ?? '';
      assert.match(blockMd5, /^[0-9a-f]{32}$/);
      const r = await runPod(ns, 'blk-read', {
        image: busybox,
        script: 'dd if=/dev/xvda bs=1M count=4 2>/dev/null | md5sum; blockdev --getsize64 /dev/xvda',
        pvc: { name: 'blk', mode: 'Block' },
      });
      const [md5, size] = r.trim().split(/\s+-?\s*/);
      assert.equal(md5, blockMd5);
      assert.equal(Number(size), 32 * 1024 * 1024);
    });

    void test('a VolumeSnapshot restored into a new PVC holds the same bytes', async () => {
      await apply({
        apiVersion: 'snapshot.storage.k8s.io/v1',
        kind: 'VolumeSnapshot',
        metadata: { name: 'fs-snap', namespace: ns },
        spec: { source: { persistentVolumeClaimName: 'fs' } },
      });
      await waitFor(
        'VolumeSnapshot fs-snap readyToUse',
        async () =>
          (await kubectl([
            '-n',
            ns,
            'get',
            'volumesnapshot',
            'fs-snap',
            '-o',
            'jsonpath={.status.readyToUse}',
          ])) === 'true'
            ? true
            : undefined,
        180_000,
        () => kubectl(['-n', ns, 'describe', 'volumesnapshot', 'fs-snap']),
      );
      await createPvc(ns, 'fs-restored', 'Filesystem', '64Mi', { kind: 'VolumeSnapshot', name: 'fs-snap' });
      const out = await runPod(ns, 'restored-read', {
        image: busybox,
        script: 'cat /data/token',
        pvc: { name: 'fs-restored', mode: 'Filesystem' },
      });
      assert.equal(out.trim(), token);
    });

    void test('expanding a Filesystem PVC grows the filesystem a pod sees, keeping the data', async () => {
      await createPvc(ns, 'grow', 'Filesystem', '32Mi');
      await runPod(ns, 'grow-write', {
        image: busybox,
        script: `echo ${token} > /data/token && sync`,
        pvc: { name: 'grow', mode: 'Filesystem' },
      });
      await kubectl([
        '-n',
        ns,
        'patch',
        'pvc',
        'grow',
        '-p',
        '{"spec":{"resources":{"requests":{"storage":"96Mi"}}}}',
      ]);
      await waitFor(
        'PVC grow to report 96Mi',
        async () =>
          (await kubectl(['-n', ns, 'get', 'pvc', 'grow', '-o', 'jsonpath={.status.capacity.storage}'])) ===
          '96Mi'
            ? true
            : undefined,
        180_000,
        () => kubectl(['-n', ns, 'describe', 'pvc', 'grow']),
      );
      const out = await runPod(ns, 'grow-read', {
        image: busybox,
        script: "cat /data/token && df -k /data | tail -1 | awk '{print $2}'",
        pvc: { name: 'grow', mode: 'Filesystem' },
      });
      const [read, kib] = out.trim().split('\n');
      assert.equal(read, token);
      assert.ok(Number(kib) > 64 * 1024, `the filesystem grew past 64 MiB (df says ${kib} KiB)`);
    });

    void test('a WaitForFirstConsumer claim stays Pending until a pod uses it, then binds and serves the pod', async () => {
      await createPvc(ns, 'late', 'Filesystem', '16Mi', undefined, 'cdi-hostpath-wffc');
      await new Promise((r) => setTimeout(r, 3000));
      assert.equal(
        await kubectl(['-n', ns, 'get', 'pvc', 'late', '-o', 'jsonpath={.status.phase}']),
        'Pending',
      );
      const out = await runPod(ns, 'late-use', {
        image: busybox,
        script: 'echo first-consumer > /data/x && cat /data/x',
        pvc: { name: 'late', mode: 'Filesystem' },
      });
      assert.equal(out.trim(), 'first-consumer');
      assert.equal(
        await kubectl(['-n', ns, 'get', 'pvc', 'late', '-o', 'jsonpath={.status.phase}']),
        'Bound',
      );
    });

    void test('a PVC cloned by CSI (dataSource: another PVC) holds the same bytes', async () => {
      assert.ok(blockMd5, 'the Block PVC test wrote data first');
      await createPvc(ns, 'blk-clone', 'Block', '32Mi', { kind: 'PersistentVolumeClaim', name: 'blk' });
      const out = await runPod(ns, 'clone-read', {
        image: busybox,
        script: 'dd if=/dev/xvda bs=1M count=4 2>/dev/null | md5sum',
        pvc: { name: 'blk-clone', mode: 'Block' },
      });
      assert.equal(out.split(/\s+/)[0], blockMd5);
      const fsClone = 'fs-clone';
      await createPvc(ns, fsClone, 'Filesystem', '128Mi', { kind: 'PersistentVolumeClaim', name: 'fs' });
      const fsOut = await runPod(ns, 'fs-clone-read', {
        image: busybox,
        script: 'cat /data/token',
        pvc: { name: fsClone, mode: 'Filesystem' },
      });
      assert.equal(fsOut.trim(), token);
    });
  });
});
