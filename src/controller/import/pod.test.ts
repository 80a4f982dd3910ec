import type { PersistentVolumeClaim as Pvc } from '../../kube/index.ts';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildImportEnv, importPodName, makeImporterPod, requiresScratch, resourceName } from './pod.ts';
import type { CDIConfig } from '../shared/types.ts';

const pvc = (annotations: Record<string, string>, volumeMode = 'Filesystem'): Pvc => ({
  metadata: {
    name: 'disk',
    namespace: 'ns',
    uid: 'pvc-uid',
    annotations,
    ownerReferences: [
      {
        apiVersion: 'cdi.kubevirt.io/v1beta1',
        kind: 'DataVolume',
        name: 'disk',
        uid: 'dv-uid',
        controller: true,
      },
    ],
  },
  spec: { volumeMode, resources: { requests: { storage: '1138166334' } }, accessModes: ['ReadWriteOnce'] },
});

const config: CDIConfig = {
  metadata: { name: 'config' },
  status: {
    defaultPodResourceRequirements: {
      limits: { cpu: '750m', memory: '600M' },
      requests: { cpu: '100m', memory: '60M' },
    },
    importProxy: { HTTPProxy: 'http://proxy:3128', HTTPSProxy: '', noProxy: '', trustedCAProxy: '' },
  },
};

const env = (p: Pvc): Record<string, string | undefined> =>
  Object.fromEntries(
    (
      makeImporterPod(
        p,
        buildImportEnv(p, config, '0.06'),
        { image: 'img', pullPolicy: 'IfNotPresent' },
        undefined,
      ).spec?.containers[0]?.env ?? []
    ).map((e) => [
      e.name,
      e.value ?? `secret:${e.valueFrom?.secretKeyRef?.name}/${e.valueFrom?.secretKeyRef?.key}`,
    ]),
  );

void test('importer env follows the upstream contract', () => {
  const e = env(
    pvc({
      'cdi.kubevirt.io/storage.import.endpoint': 'https://example.test/disk.qcow2',
      'cdi.kubevirt.io/storage.import.source': 'http',
      'cdi.kubevirt.io/storage.import.secretName': 'creds',
      'cdi.kubevirt.io/storage.import.certConfigMap': 'ca',
      'cdi.kubevirt.io/storage.import.checksum': 'sha256:abc',
      'cdi.kubevirt.io/storage.import.extraHeaders.0': 'X-A: 1',
      'cdi.kubevirt.io/storage.import.extraHeaders.1': 'X-B: 2',
      'cdi.kubevirt.io/storage.import.insecureSkipVerify': 'true',
      'cdi.kubevirt.io/storage.preallocation.requested': 'true',
      'cdi.kubevirt.io/storage.contentType': 'kubevirt',
      'cdi.kubevirt.io/storage.import.importPodName': 'importer-disk',
    }),
  );
  assert.equal(e['IMPORTER_SOURCE'], 'http');
  assert.equal(e['IMPORTER_ENDPOINT'], 'https://example.test/disk.qcow2');
  assert.equal(e['IMPORTER_CONTENTTYPE'], 'kubevirt');
  assert.equal(e['IMPORTER_IMAGE_SIZE'], '1138166334');
  assert.equal(e['OWNER_UID'], 'dv-uid');
  assert.equal(e['FILESYSTEM_OVERHEAD'], '0.06');
  assert.equal(e['INSECURE_TLS'], 'true');
  assert.equal(e['PREALLOCATION'], 'true');
  assert.equal(e['IMPORTER_CHECKSUM'], 'sha256:abc');
  assert.equal(e['IMPORTER_CERT_DIR'], '/certs');
  assert.equal(e['IMPORTER_ACCESS_KEY_ID'], 'secret:creds/accessKeyId');
  assert.equal(e['IMPORTER_SECRET_KEY'], 'secret:creds/secretKey');
  assert.equal(e['IMPORTER_EXTRA_HEADER_0'], 'X-A: 1');
  assert.equal(e['IMPORTER_EXTRA_HEADER_1'], 'X-B: 2');
  assert.equal(e['http_proxy'], 'http://proxy:3128');
  assert.equal(e['CACHE_MODE'], '');
});

void test('a bare annotated PVC (old API) defaults to an http source and uses its own UID as owner', () => {
  const p = pvc({ 'cdi.kubevirt.io/storage.import.endpoint': 'http://h/x.img' });
  delete p.metadata!.ownerReferences;
  const e = buildImportEnv(p, config, '0');
  assert.equal(e.source, 'http');
  assert.equal(e.ownerUID, 'pvc-uid');
  assert.equal(e.insecureTLS, false);
});

void test('a missing endpoint is a one-line error that says what to set', () => {
  assert.throws(
    () => buildImportEnv(pvc({ 'cdi.kubevirt.io/storage.import.source': 'http' }), config, '0'),
    /storage\.import\.endpoint.*is empty: set it/,
  );
});

void test('pod: restricted, owned by the PVC, Filesystem mounted at /data, scratch and certs mounted', () => {
  const p = pvc({
    'cdi.kubevirt.io/storage.import.endpoint': 'http://h/x',
    'cdi.kubevirt.io/storage.import.certConfigMap': 'ca',
  });
  const pod = makeImporterPod(
    p,
    buildImportEnv(p, config, '0.06'),
    {
      image: 'localhost:5000/cdi-importer:latest',
      pullPolicy: 'Always',
      resources: config.status?.defaultPodResourceRequirements,
    },
    'disk-scratch',
  );
  assert.equal(pod.metadata?.name, 'importer-disk');
  assert.equal(pod.metadata?.labels?.['cdi.kubevirt.io'], 'importer');
  assert.equal(pod.metadata?.annotations?.['cdi.kubevirt.io/storage.createdByController'], 'yes');
  assert.equal(pod.metadata?.annotations?.['sidecar.istio.io/inject'], 'false');
  assert.deepEqual(pod.metadata?.ownerReferences, [
    {
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      name: 'disk',
      uid: 'pvc-uid',
      blockOwnerDeletion: true,
      controller: true,
    },
  ]);
  const spec = pod.spec!;
  assert.equal(spec.restartPolicy, 'OnFailure');
  assert.equal(spec.securityContext?.fsGroup, 107);
  assert.equal(spec.securityContext?.seccompProfile?.type, 'RuntimeDefault');
  const c = spec.containers[0]!;
  assert.equal(c.image, 'localhost:5000/cdi-importer:latest');
  assert.equal(c.imagePullPolicy, 'Always');
  assert.equal(c.terminationMessagePolicy, 'FallbackToLogsOnError');
  assert.deepEqual(c.securityContext, {
    allowPrivilegeEscalation: false,
    capabilities: { drop: ['ALL'] },
    runAsNonRoot: true,
    runAsUser: 107,
    seccompProfile: { type: 'RuntimeDefault' },
  });
  assert.deepEqual(c.ports, [{ name: 'metrics', containerPort: 8443, protocol: 'TCP' }]);
  assert.deepEqual(c.resources, config.status?.defaultPodResourceRequirements);
  assert.deepEqual(c.volumeMounts, [
    { name: 'cdi-data-vol', mountPath: '/data' },
    { name: 'cdi-scratch-vol', mountPath: '/scratch' },
    { name: 'cdi-cert-vol', mountPath: '/certs' },
  ]);
  assert.deepEqual(
    spec.volumes?.map((v) => [v.name, v.persistentVolumeClaim?.claimName ?? v.configMap?.name]),
    [
      ['cdi-data-vol', 'disk'],
      ['cdi-scratch-vol', 'disk-scratch'],
      ['cdi-cert-vol', 'ca'],
    ],
  );
});

void test('pod: Block volumes are attached as a device at /dev/cdi-block-volume, no fsGroup without mounts', () => {
  const p = pvc({ 'cdi.kubevirt.io/storage.import.endpoint': 'http://h/x' }, 'Block');
  const pod = makeImporterPod(
    p,
    buildImportEnv(p, config, '0'),
    { image: 'i', pullPolicy: 'IfNotPresent' },
    undefined,
  );
  const c = pod.spec!.containers[0]!;
  assert.deepEqual(c.volumeDevices, [{ name: 'cdi-data-vol', devicePath: '/dev/cdi-block-volume' }]);
  assert.equal(c.volumeMounts, undefined);
  assert.equal(pod.spec?.securityContext?.fsGroup, undefined);
});

void test('OOM retry: requiresDirectIo turns into CACHE_MODE=TRYNONE', () => {
  const e = env(
    pvc({
      'cdi.kubevirt.io/storage.import.endpoint': 'http://h/x',
      'cdi.kubevirt.io/storage.import.requiresDirectIo': 'true',
    }),
  );
  assert.equal(e['CACHE_MODE'], 'TRYNONE');
});

void test('scratch is required for archives, pod-pull registry imports and when the importer asked', () => {
  assert.equal(requiresScratch(pvc({ 'cdi.kubevirt.io/storage.contentType': 'archive' })), true);
  assert.equal(requiresScratch(pvc({ 'cdi.kubevirt.io/storage.import.source': 'registry' })), true);
  assert.equal(
    requiresScratch(
      pvc({
        'cdi.kubevirt.io/storage.import.source': 'registry',
        'cdi.kubevirt.io/storage.import.registryImportMethod': 'node',
      }),
    ),
    false,
  );
  assert.equal(requiresScratch(pvc({ 'cdi.kubevirt.io/storage.import.source': 'http' })), false);
  assert.equal(requiresScratch(pvc({ 'cdi.kubevirt.io/storage.import.requiresScratch': 'true' })), true);
});

void test('names: importer-<pvc>, and very long names are shortened with a hash', () => {
  assert.equal(importPodName(pvc({})), 'importer-disk');
  const long = 'a'.repeat(260);
  const n = resourceName(long, 'scratch');
  assert.ok(n.length <= 253);
  assert.ok(n.endsWith('-scratch'));
  assert.notEqual(n, resourceName('b' + long.slice(1), 'scratch'));
});

void test("the trusted proxy CA: the pod mounts the namespace's copy at /proxycerts/ and is told where it is", () => {
  const withCa: CDIConfig = {
    ...config,
    status: {
      ...config.status,
      importProxy: {
        HTTPProxy: 'http://proxy:3128',
        HTTPSProxy: '',
        noProxy: '',
        trustedCAProxy: 'proxy-ca',
      },
    },
  };
  const p = pvc({ 'cdi.kubevirt.io/storage.import.endpoint': 'https://x/y.img' });
  const pod = makeImporterPod(
    p,
    buildImportEnv(p, withCa, '0.06'),
    { image: 'img', pullPolicy: 'Always' },
    undefined,
  );
  const c = pod.spec?.containers[0];
  assert.ok(c?.env?.some((e) => e.name === 'IMPORTER_PROXY_CERT_DIR' && e.value === '/proxycerts/'));
  assert.deepEqual(
    c?.volumeMounts?.find((m) => m.name === 'cdi-proxy-cert-vol'),
    { name: 'cdi-proxy-cert-vol', mountPath: '/proxycerts/' },
  );
  assert.deepEqual(pod.spec?.volumes?.find((v) => v.name === 'cdi-proxy-cert-vol')?.configMap, {
    name: 'import-proxy-cm-disk',
  });
  const without = makeImporterPod(
    p,
    buildImportEnv(p, config, '0.06'),
    { image: 'img', pullPolicy: 'Always' },
    undefined,
  );
  assert.equal(
    without.spec?.volumes?.some((v) => v.name === 'cdi-proxy-cert-vol'),
    false,
  );
});

void test("secret extra headers: each secret is mounted at /extraheaders/<n>, in the annotations' order", () => {
  const p = pvc({
    'cdi.kubevirt.io/storage.import.endpoint': 'https://x/y.img',
    'cdi.kubevirt.io/storage.import.secretExtraHeaders.0': 'token-a',
    'cdi.kubevirt.io/storage.import.secretExtraHeaders.1': 'token-b',
  });
  const pod = makeImporterPod(
    p,
    buildImportEnv(p, config, '0.06'),
    { image: 'img', pullPolicy: 'Always' },
    undefined,
  );
  assert.deepEqual(
    pod.spec?.containers[0]?.volumeMounts?.filter((m) => m.mountPath.startsWith('/extraheaders')),
    [
      { name: 'cdi-secret-extra-headers-vol-0', mountPath: '/extraheaders/0' },
      { name: 'cdi-secret-extra-headers-vol-1', mountPath: '/extraheaders/1' },
    ],
  );
  assert.deepEqual(
    pod.spec?.volumes?.filter((v) => v.secret).map((v) => [v.name, v.secret?.secretName]),
    [
      ['cdi-secret-extra-headers-vol-0', 'token-a'],
      ['cdi-secret-extra-headers-vol-1', 'token-b'],
    ],
  );
});

void test("importer pods carry upstream's labels: the CDI ones and the recommended ones", () => {
  const p = pvc({ 'cdi.kubevirt.io/storage.import.endpoint': 'https://x/y.img' });
  const pod = makeImporterPod(
    p,
    buildImportEnv(p, config, '0.06'),
    { image: 'img', pullPolicy: 'Always' },
    undefined,
  );
  assert.deepEqual(pod.metadata?.labels, {
    app: 'containerized-data-importer',
    'cdi.kubevirt.io': 'importer',
    'prometheus.cdi.kubevirt.io': 'true',
    'app.kubernetes.io/component': 'storage',
    'app.kubernetes.io/managed-by': 'cdi-controller',
  });
});
