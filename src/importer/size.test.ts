import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ImportError } from './errors.ts';
import { MiB, parseSize, requiredSpace, usableSpace } from './size.ts';

void describe('sizes', () => {
  void it('parses bytes and Kubernetes quantities', () => {
    assert.equal(parseSize('1073741824'), 1024 ** 3);
    assert.equal(parseSize('10Gi'), 10 * 1024 ** 3);
    assert.equal(parseSize('512Mi'), 512 * MiB);
    assert.equal(parseSize('1G'), 1e9);
    assert.equal(parseSize('1.5Ki'), 1536);
    assert.equal(parseSize('1e9'), 1e9);
    assert.equal(parseSize('1Ei'), 2 ** 60);
    assert.throws(
      () => parseSize('ten'),
      (e: unknown) => e instanceof ImportError && /invalid size "ten"/.test(e.message),
    );
    assert.throws(() => parseSize('-1Gi'), ImportError);
    assert.throws(() => parseSize('9007199254740993'), /only round sizes/);
  });

  void it('applies the filesystem overhead as upstream does (multiplier, 1 MiB alignment)', () => {
    assert.equal(usableSpace(0, 10 * MiB), 10 * MiB);
    assert.equal(usableSpace(0.055, 10 * MiB), 9 * MiB);
    assert.equal(usableSpace(0.055, 1024 ** 3), 970 * MiB);
    assert.equal(requiredSpace(0.055, 1024 ** 3), Math.ceil(1024 ** 3 * 1.055));
    assert.equal(requiredSpace(0, 1), MiB);
  });
});
