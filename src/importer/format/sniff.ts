/** Magic-byte detection (upstream's table, cdi-upstream.md §3.3). Needs the first 512 bytes, or fewer at EOF. */

export const Compression = { Gzip: 'gz', Xz: 'xz', Zstd: 'zst' } as const;
export type Compression = (typeof Compression)[keyof typeof Compression];

/** Disk formats, named as qemu-img names them (vhd is qemu's `vpc`). */
export const DiskFormat = {
  Raw: 'raw',
  Qcow2: 'qcow2',
  Vmdk: 'vmdk',
  Vdi: 'vdi',
  Vpc: 'vpc',
  Vhdx: 'vhdx',
} as const;
export type DiskFormat = (typeof DiskFormat)[keyof typeof DiskFormat];

export type Layer = Compression | DiskFormat | 'tar';

export const SNIFF_BYTES = 512;

function at(buf: Buffer, offset: number, magic: Buffer | string): boolean {
  const m = typeof magic === 'string' ? Buffer.from(magic, 'latin1') : magic;
  return buf.length >= offset + m.length && buf.subarray(offset, offset + m.length).equals(m);
}

export function sniff(head: Buffer): Layer {
  if (at(head, 0, Buffer.from([0x1f, 0x8b]))) return Compression.Gzip;
  if (at(head, 0, Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return Compression.Xz;
  if (at(head, 0, Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))) return Compression.Zstd;
  if (at(head, 0, 'QFI\xfb')) return DiskFormat.Qcow2;
  if (at(head, 0, 'KDMV') || at(head, 0, '# Disk DescriptorFile')) return DiskFormat.Vmdk;
  if (at(head, 0x40, Buffer.from([0x7f, 0x10, 0xda, 0xbe]))) return DiskFormat.Vdi;
  if (at(head, 0, 'conectix')) return DiskFormat.Vpc;
  if (at(head, 0, 'vhdxfile')) return DiskFormat.Vhdx;
  if (at(head, 0x101, 'ustar')) return 'tar';
  return DiskFormat.Raw;
}

export function isCompression(l: Layer): l is Compression {
  return l === 'gz' || l === 'xz' || l === 'zst';
}

/** What the header alone tells about the virtual size (qcow2 only; other formats need qemu-img). */
export function headerVirtualSize(format: Layer, head: Buffer): number | undefined {
  if (format === DiskFormat.Qcow2 && head.length >= 32) return Number(head.readBigUInt64BE(24));
  return undefined;
}
