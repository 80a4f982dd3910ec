import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { ChecksumTap, parseChecksum } from './checksum.ts';
import { ImportError } from './errors.ts';

void describe('checksums', () => {
  void it('parses algo:hex and refuses anything else', () => {
    assert.deepEqual(parseChecksum('sha256:' + 'AB'.repeat(32)), {
      algorithm: 'sha256',
      hex: 'ab'.repeat(32),
    });
    // what the webhook (upstream's ParseAndValidate) admits: both sides trimmed and lower-cased
    assert.deepEqual(parseChecksum(' MD5 : ' + 'F'.repeat(32) + ' '), {
      algorithm: 'md5',
      hex: 'f'.repeat(32),
    });
    for (const bad of [
      'md5:123',
      'crc32:deadbeef',
      'sha1',
      'sha512:' + 'z'.repeat(128),
      ':' + 'a'.repeat(32),
    ]) {
      assert.throws(() => parseChecksum(bad), ImportError, bad);
    }
  });

  void it('verifies the bytes that pass through, and names both digests on a mismatch', async () => {
    const good = new ChecksumTap(parseChecksum('md5:5d41402abc4b2a76b9719d911017c592'));
    await pipeline(
      Readable.from([Buffer.from('hel'), Buffer.from('lo')]),
      good.stage(),
      new Writable({ write: (_c, _e, cb) => cb() }),
    );
    good.verify();
    const bad = new ChecksumTap(parseChecksum('md5:' + '0'.repeat(32)));
    await pipeline(
      Readable.from([Buffer.from('hello')]),
      bad.stage(),
      new Writable({ write: (_c, _e, cb) => cb() }),
    );
    assert.throws(
      () => bad.verify(),
      /checksum validation failed: checksum mismatch: expected md5:0{32}, calculated md5:5d41402abc4b2a76b9719d911017c592$/,
    );
  });
});
