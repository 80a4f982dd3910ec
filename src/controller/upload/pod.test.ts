import type { PersistentVolumeClaim as Pvc, Pod } from '../../kube/index.ts';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isPodReady, makeCertSecret, makeUploadPod, makeUploadService, uploadResourceName } from './pod.ts';

const pvc = (volumeMode = 'Filesystem', annotations: Record<string, string> = {}): Pvc => ({
  metadata: {
    name: 'disk',
    namespace: 'ns',
    uid: 'pvc-uid',
    annotations: { 'cdi.kubevirt.io/storage.upload.target': '', ...annotations },
  },
  spec: { volumeMode, resources: { requests: { storage: '1138166334' } }, accessModes: ['ReadWriteOnce'] },
});

const args = {
  name: 'cdi-upload-disk',
  clientName: 'client.upload-server.cdi.kubevirt.io',
  filesystemOverhead: '0.06',
  preallocation: false,
  deadline: new Date('2026-01-01T12:00:00.000Z'),
  scratchName: 'disk-scratch',
};
const opts = { image: 'localhost:5000/cdi-uploadserver:t', pullPolicy: 'IfNotPresent' };
const envOf = (p: Pod): Record<string, string | undefined> =>
  Object.fromEntries((p.spec?.containers[0]?.env ?? []).map((e) => [e.name, e.value]));

void test("the upload pod: upstream's env, certificate mount, HTTPS readiness probe, owner, labels", () => {
  const pod = makeUploadPod(pvc(), args, opts);
  assert.equal(pod.metadata?.name, 'cdi-upload-disk');
  assert.deepEqual(envOf(pod), {
    TLS_KEY_FILE: '/etc/tls/tls.key',
    TLS_CERT_FILE: '/etc/tls/tls.crt',
    CLIENT_CERT_FILE: '/etc/tls/ca.crt',
    FILESYSTEM_OVERHEAD: '0.06',
    UPLOAD_IMAGE_SIZE: '1138166334',
    CLIENT_NAME: 'client.upload-server.cdi.kubevirt.io',
    PREALLOCATION: 'false',
    DEADLINE: '2026-01-01T12:00:00Z',
  });
  const c = pod.spec?.containers[0];
  assert.equal(c?.name, 'cdi-upload-server');
  assert.deepEqual(c?.readinessProbe?.httpGet, { path: '/healthz', port: 8443, scheme: 'HTTPS' });
  assert.deepEqual(
    c?.volumeMounts?.map((m) => `${m.name}:${m.mountPath}`),
    ['tls-config:/etc/tls/', 'cdi-data-vol:/data', 'cdi-scratch-vol:/scratch'],
  );
  assert.deepEqual(pod.spec?.volumes?.[0], { name: 'tls-config', secret: { secretName: 'cdi-upload-disk' } });
  assert.equal(pod.spec?.restartPolicy, 'OnFailure');
  assert.equal(pod.spec?.automountServiceAccountToken, false);
  assert.equal(c?.securityContext?.runAsNonRoot, true);
  assert.deepEqual(pod.metadata?.ownerReferences?.[0], {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    name: 'disk',
    uid: 'pvc-uid',
    controller: true,
    blockOwnerDeletion: true,
  });
  assert.equal(pod.metadata?.labels?.['service'], 'cdi-upload-disk');
  assert.equal(pod.metadata?.labels?.['cdi.kubevirt.io'], 'cdi-upload-server');
  assert.equal(pod.metadata?.labels?.['cdi.kubevirt.io/uploadTarget'], 'pvc-uid');
  assert.equal(pod.metadata?.labels?.['app'], 'containerized-data-importer', 'kept whole in the cache');
});

void test('a Block target: the device at /dev/cdi-block-volume and DESTINATION naming it', () => {
  const pod = makeUploadPod(pvc('Block'), args, opts);
  const c = pod.spec?.containers[0];
  assert.deepEqual(c?.volumeDevices, [{ name: 'cdi-data-vol', devicePath: '/dev/cdi-block-volume' }]);
  assert.equal(envOf(pod)['DESTINATION'], '/dev/cdi-block-volume');
  assert.ok(!c?.volumeMounts?.some((m) => m.mountPath === '/data'));
});

void test('the Service selects the pod, headless on 8443; the Secret is the pod’s', () => {
  const svc = makeUploadService(pvc(), 'cdi-upload-disk');
  assert.deepEqual(svc.spec, {
    clusterIP: 'None',
    ports: [{ protocol: 'TCP', port: 8443, targetPort: 8443 }],
    selector: { service: 'cdi-upload-disk' },
  });
  const pod = {
    ...makeUploadPod(pvc(), args, opts),
    metadata: { name: 'cdi-upload-disk', namespace: 'ns', uid: 'pod-uid' },
  };
  const s = makeCertSecret(pod, { certPem: 'CERT', keyPem: 'KEY' }, 'CA');
  assert.equal(s.metadata?.ownerReferences?.[0]?.uid, 'pod-uid');
  assert.deepEqual(
    Object.fromEntries(
      Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]),
    ),
    { 'tls.key': 'KEY', 'tls.crt': 'CERT', 'ca.crt': 'CA' },
  );
});

void test('names and readiness as upstream', () => {
  assert.equal(uploadResourceName(pvc()), 'cdi-upload-disk');
  assert.equal(uploadResourceName(pvc('Filesystem', { 'cdi.kubevirt.io/storage.uploadPodName': 'x' })), 'x');
  const ready = (r: boolean[]): boolean =>
    isPodReady({
      status: {
        containerStatuses: r.map((ready, i) => ({
          name: `c${i}`,
          ready,
          restartCount: 0,
          image: '',
          imageID: '',
        })),
      },
    });
  assert.equal(ready([]), false);
  assert.equal(ready([true]), true);
  assert.equal(ready([true, false]), false);
});
