/** `algo:hex` checksums over the source bytes as received (before decompression), as upstream (v1.65+). */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { ErrorKind, ImportError } from './errors.ts';

const LENGTHS: Record<string, number> = { md5: 32, sha1: 40, sha256: 64, sha512: 128 };

export interface Checksum {
  algorithm: string;
  hex: string;
}

export function parseChecksum(text: string): Checksum {
  const m = /^(md5|sha1|sha256|sha512):([0-9a-fA-F]+)$/.exec(text.trim());
  if (!m || m[2]!.length !== LENGTHS[m[1]!]) {
    throw new ImportError(
      ErrorKind.Invalid,
      `invalid checksum "${text}": use md5|sha1|sha256|sha512:<hex> with the full-length hex digest`,
    );
  }
  return { algorithm: m[1]!, hex: m[2]!.toLowerCase() };
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
