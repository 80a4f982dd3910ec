// The importer image as people use it (full profile, after hack/images/build.sh): `kubectl exec` into a pod of it
// and run a shell script with bash, GNU coreutils and qemu-img, as in upstream's image. Reads the tag from
// .cluster/images.env.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Resources, type KubeClient, type Pod } from '../../../src/kube/index.ts';
import { imagesEnv, requireFullCluster } from '../../e2e/harness.ts';
import { eventually, kubectl, useTestNamespace } from '../kube/cluster.ts';

let client: KubeClient;
let ns: string;
useTestNamespace('importer-image', (c, n) => ((client = c), (ns = n)));

void test('the importer image has bash, GNU coreutils and qemu-img on its PATH', async () => {
  await requireFullCluster(client);
  const env = imagesEnv();
  const image = `${env['CDI_IMAGE_REGISTRY'] ?? 'localhost:5000'}/cdi-importer:${env['CDI_IMAGE_TAG'] ?? 'dev'}`;
  await client.create(Resources.Pod, {
    metadata: { name: 'shell', namespace: ns },
    spec: {
      restartPolicy: 'Never',
      terminationGracePeriodSeconds: 0,
      // as the importer runs: uid 107, no privileges; the entrypoint (node) is replaced by a shell that waits
      securityContext: { runAsUser: 107, runAsGroup: 107, runAsNonRoot: true },
      containers: [
        {
          name: 'importer',
          image,
          imagePullPolicy: 'IfNotPresent',
          command: ['bash', '-c', 'trap "exit 0" TERM; sleep 3600 & wait'],
          securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
        },
      ],
    },
  });
  await eventually(
    'the pod to run',
    async () => (await client.get<Pod>(Resources.Pod, 'shell', ns)).status?.phase === 'Running',
    180_000,
    500,
  );
  const r = await kubectl('exec', '-n', ns, 'shell', '--', 'bash', '-c', 'ls --version; qemu-img --version');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^ls \(GNU coreutils\) \d+\.\d+/m);
  assert.match(r.stdout, /^qemu-img version \d+\.\d+/m);
  // a script in the way people write them: GNU options, bash arrays, /bin/sh being bash
  const script = [
    'set -euo pipefail',
    'files=(/etc/passwd /etc/group)',
    'stat --format=%s "${files[@]}" >/dev/null',
    'date --utc --iso-8601=seconds >/dev/null',
    'dd if=/dev/zero of=/tmp/x bs=1M count=1 status=none',
    'du --bytes --summarize /tmp/x | cut -f1',
    'readlink -f /bin/sh',
    'echo "$BASH_VERSION" | cut -d. -f1',
  ].join('\n');
  const s = await kubectl('exec', '-n', ns, 'shell', '--', 'bash', '-c', script);
  assert.equal(s.code, 0, s.stderr);
  const [bytes, sh, bashMajor] = s.stdout.trim().split('\n');
  assert.equal(bytes, '1048576');
  assert.equal(sh, '/bin/bash');
  assert.ok(Number(bashMajor) >= 5, `bash ${bashMajor}`);
});
