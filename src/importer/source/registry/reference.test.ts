import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { envsToLabels } from '../registry.ts';
import { apiHost, parseImageUrl } from './reference.ts';

void describe('image references', () => {
  void it('parses docker:// references as containers/image does', () => {
    assert.deepEqual(parseImageUrl('docker://fedora'), {
      kind: 'docker',
      registry: 'docker.io',
      repository: 'library/fedora',
      tag: 'latest',
      text: 'docker://fedora',
    });
    const r = parseImageUrl('docker://127.0.0.1:5000/kubevirt/fedora-cloud-container-disk-demo:v1.2');
    assert.equal(
      r.kind === 'docker' && `${r.registry}|${r.repository}|${r.tag}`,
      '127.0.0.1:5000|kubevirt/fedora-cloud-container-disk-demo|v1.2',
    );
    const d = `sha256:${'a'.repeat(64)}`;
    const q = parseImageUrl(`docker://quay.io/containerdisks/fedora@${d}`);
    assert.equal(
      q.kind === 'docker' && `${q.registry}|${q.repository}|${q.tag}|${q.digest}`,
      `quay.io|containerdisks/fedora|undefined|${d}`,
    );
    assert.equal(apiHost('docker.io'), 'registry-1.docker.io');
    assert.throws(() => parseImageUrl('docker://Quay.io/UPPER/case'), /lowercase path components/);
    assert.throws(() => parseImageUrl('docker://x/y@sha256:abc'), /is not a sha256:\/sha512: digest/);
    assert.throws(() => parseImageUrl('http://x/y'), /use docker:\/\//);
  });

  void it('parses oci-archive:// paths with an optional image name', () => {
    assert.deepEqual(parseImageUrl('oci-archive:///images/disk.tar:v1'), {
      kind: 'oci-archive',
      path: '/images/disk.tar',
      ref: 'v1',
      text: 'oci-archive:///images/disk.tar:v1',
    });
    const p = parseImageUrl('oci-archive:///a:b/disk.tar');
    assert.equal(p.kind === 'oci-archive' && `${p.path}|${p.ref}`, '/a:b/disk.tar|undefined');
  });

  void it("turns the image's KUBEVIRT_IO_* env into PVC labels as upstream", () => {
    assert.deepEqual(
      envsToLabels([
        'PATH=/bin',
        'KUBEVIRT_IO_OS=fedora',
        'INSTANCETYPE_KUBEVIRT_IO_DEFAULT_INSTANCETYPE=u1.small',
        'NOEQUALS',
      ]),
      { 'kubevirt.io/os': 'fedora', 'instancetype.kubevirt.io/default-instancetype': 'u1.small' },
    );
  });
});
