/**
 * Test images generated on the fly from a seeded raw disk (nothing large is committed):
 *   const disk = await makeSeededDisk(dir, { size: 8 << 20, seed: 'x' });  // half random, half zero
 *   await makeVariant(disk.path, dir, 'qcow2.xz')                          // → path of disk.qcow2.xz
 * Variants: raw, iso, gz, xz, zst, qcow2, qcow2.gz, qcow2.xz, qcow2.zst, vmdk, vdi, vhd, vhdx, tar (the raw disk
 * inside a tar), tar.gz. The md5 of the raw disk is what every import must reproduce.
 */
import { execFile } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface SeededDisk {
  path: string;
  size: number;
  md5: string;
}

/** Deterministic pseudo-random bytes (AES-CTR keystream of the seed). */
export function seededBytes(seed: string, length: number, offset = 0): Buffer {
  const key = createHash('sha256').update(seed).digest().subarray(0, 16);
  const iv = Buffer.alloc(16);
  iv.writeBigUInt64BE(BigInt(Math.floor(offset / 16)), 8);
  const c = createCipheriv('aes-128-ctr', key, iv);
  return c.update(Buffer.alloc(length));
}

export async function md5File(p: string, limit?: number): Promise<string> {
  const h = createHash('md5');
  for await (const chunk of createReadStream(p, limit !== undefined ? { end: limit - 1 } : {}))
    h.update(chunk as Buffer);
  return h.digest('hex');
}

/**
 * A raw disk of `size` bytes (a multiple of 1 MiB): alternating random and zero regions, about half random,
 * with an ISO-9660-like marker so the same bytes also play an "iso".
 */
export async function makeSeededDisk(
  dir: string,
  opts: { size: number; seed?: string; name?: string; chunk?: number },
): Promise<SeededDisk> {
  const p = path.join(dir, opts.name ?? 'seed.raw');
  const seed = opts.seed ?? 'cdi-ts';
  const chunk = opts.chunk ?? 1 << 20;
  const fh = await open(p, 'w');
  try {
    for (let off = 0, i = 0; off < opts.size; off += chunk, i++) {
      const len = Math.min(chunk, opts.size - off);
      if (i % 2 === 0) await fh.write(seededBytes(seed, len, off), 0, len, off);
    }
    await fh.write(Buffer.from('\x01CD001', 'latin1'), 0, 6, 0x8000);
    await fh.truncate(opts.size);
  } finally {
    await fh.close();
  }
  return { path: p, size: opts.size, md5: await md5File(p) };
}

export const VARIANTS = [
  'raw',
  'iso',
  'gz',
  'xz',
  'zst',
  'qcow2',
  'qcow2.gz',
  'qcow2.xz',
  'qcow2.zst',
  'vmdk',
  'vdi',
  'vhd',
  'vhdx',
  'tar',
  'tar.gz',
] as const;
export type Variant = (typeof VARIANTS)[number];

/** Every disk format the HTTP source accepts as kubevirt content (tar is archive content, not a disk). */
export const DISK_VARIANTS: Variant[] = VARIANTS.filter((v) => !v.startsWith('tar'));

/** The file name makeVariant gives a variant. */
export function variantFile(v: Variant): string {
  return v === 'raw' ? 'disk.raw' : `disk.${v}`;
}

const QEMU_FMT: Record<string, [string, string[]]> = {
  qcow2: ['qcow2', []],
  vmdk: ['vmdk', ['-o', 'subformat=monolithicSparse']],
  vdi: ['vdi', []],
  vhd: ['vpc', ['-o', 'subformat=dynamic,force_size=on']],
  vhdx: ['vhdx', []],
};

async function compress(tool: string, src: string, dst: string): Promise<void> {
  const args = tool === 'zstd' ? ['-q', '-f', '-c', src] : ['-c', src];
  const { stdout } = await run(tool === 'gz' ? 'gzip' : tool, args, {
    encoding: 'buffer',
    maxBuffer: 1 << 30,
  });
  const fh = await open(dst, 'w');
  await fh.write(stdout);
  await fh.close();
}

/** Makes `disk.<variant>` next to the raw disk and returns its path. */
export async function makeVariant(raw: string, dir: string, variant: Variant): Promise<string> {
  const out = path.join(dir, `disk.${variant}`);
  const [base, comp] = variant.split('.') as [string, string | undefined];
  if (variant === 'raw') {
    await run('cp', ['--sparse=always', raw, out]);
    return out;
  }
  if (variant === 'iso') {
    await run('cp', ['--sparse=always', raw, out]);
    return out;
  }
  if (variant === 'gz' || variant === 'xz' || variant === 'zst') {
    await compress(variant === 'zst' ? 'zstd' : variant === 'gz' ? 'gz' : 'xz', raw, out);
    return out;
  }
  if (base === 'tar') {
    const tarPath = path.join(dir, 'disk.tar');
    await run('tar', ['-C', path.dirname(raw), '-cf', tarPath, path.basename(raw)]);
    if (comp === 'gz') await compress('gz', tarPath, out);
    return comp ? out : tarPath;
  }
  const spec = QEMU_FMT[base];
  if (!spec) throw new Error(`unknown variant ${variant}`);
  const plain = path.join(dir, `disk.${base}`);
  await run('qemu-img', ['convert', '-f', 'raw', '-O', spec[0], ...spec[1], raw, plain]);
  if (comp) await compress(comp === 'zst' ? 'zstd' : comp === 'gz' ? 'gz' : 'xz', plain, out);
  return comp ? out : plain;
}
