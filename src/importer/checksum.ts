/** `algo:hex` checksums over the source bytes as received (before decompression), as upstream (v1.65+). */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { ErrorKind, ImportError } from './errors.ts';

const LENGTHS: Record<string, number> = { md5: 32, sha1: 40, sha256: 64, sha512: 128 };

export interface Checksum {
  algorithm: string;
  hex: string;
}

/**
 * Reads what upstream's checksum.ParseAndValidate (and so the DataVolume webhook) admits: both sides of the first
 * colon trimmed and lower-cased, so `MD5: ABC…` on a DataVolume is not admitted only to be refused in the pod.
 */
export function parseChecksum(text: string): Checksum {
  const i = text.indexOf(':');
  const algorithm = text.slice(0, Math.max(i, 0)).trim().toLowerCase();
  const hex = text
    .slice(i + 1)
    .trim()
    .toLowerCase();
  if (i < 0 || !/^[0-9a-f]+$/.test(hex) || hex.length !== LENGTHS[algorithm]) {
    throw new ImportError(
      ErrorKind.Invalid,
      `invalid checksum "${text}": use md5|sha1|sha256|sha512:<hex> with the full-length hex digest`,
    );
  }
  return { algorithm, hex };
}

export class ChecksumTap {
  readonly expected: Checksum;
  private readonly hash: Hash;
  constructor(expected: Checksum) {
    this.expected = expected;
    this.hash = createHash(expected.algorithm);
  }
  /** Bytes that went by before this process (a run continuing an earlier download: the partial file's start). */
  feed(chunk: Buffer): void {
    this.hash.update(chunk);
  }
  stage(): Transform {
    return new Transform({
      transform: (chunk: Buffer, _e: BufferEncoding, cb: TransformCallback) => {
        this.hash.update(chunk);
        cb(null, chunk);
      },
    });
  }
  /**
   * Throws the fatal checksum error when the digest differs, worded as upstream's (`checksum validation failed:
   * checksum mismatch: expected …, calculated …`; the controller matches on "checksum mismatch").
   */
  verify(): void {
    const got = this.hash.digest('hex');
    if (got !== this.expected.hex) {
      const a = this.expected.algorithm;
      throw new ImportError(
        ErrorKind.Checksum,
        `checksum validation failed: checksum mismatch: expected ${a}:${this.expected.hex}, calculated ${a}:${got}`,
      );
    }
  }
}
