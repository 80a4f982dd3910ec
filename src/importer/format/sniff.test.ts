import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { headerVirtualSize, sniff } from './sniff.ts';

function at(offset: number, bytes: Buffer | string): Buffer {
  const b = Buffer.alloc(512);
  (typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes).copy(b, offset);
  return b;
}

void describe('sniff', () => {
  void it('recognises the upstream magic table', () => {
    assert.equal(sniff(at(0, Buffer.from([0x1f, 0x8b, 8]))), 'gz');
    assert.equal(sniff(at(0, Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0]))), 'xz');
    assert.equal(sniff(at(0, Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))), 'zst');
    assert.equal(sniff(at(0, 'QFI\xfb')), 'qcow2');
    assert.equal(sniff(at(0, 'KDMV')), 'vmdk');
    assert.equal(sniff(at(0, '# Disk DescriptorFile')), 'vmdk');
    assert.equal(sniff(at(0x40, Buffer.from([0x7f, 0x10, 0xda, 0xbe]))), 'vdi');
    assert.equal(sniff(at(0, 'conectix')), 'vpc');
    assert.equal(sniff(at(0, 'vhdxfile')), 'vhdx');
    assert.equal(sniff(at(0x101, 'ustar')), 'tar');
    assert.equal(sniff(at(0, 'hello')), 'raw');
    assert.equal(sniff(Buffer.alloc(0)), 'raw');
    assert.equal(sniff(Buffer.from([0x1f])), 'raw', 'a lone first magic byte is raw');
  });

  void it('reads the qcow2 virtual size from the header', () => {
    const b = at(0, 'QFI\xfb');
    b.writeBigUInt64BE(10n * 1024n ** 3n, 24);
    assert.equal(headerVirtualSize('qcow2', b), 10 * 1024 ** 3);
    assert.equal(headerVirtualSize('raw', b), undefined);
  });
});
