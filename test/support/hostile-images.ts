/**
 * Images that name other files or endpoints, crafted from images real qemu-img creates (a few header fields
 * patched, as an attacker would): each names `ref` (a FIFO or socket sentinel, test/support/sentinel.ts) where the
 * format lets an image name another file. The layouts are the formats' own (VMDK 1.1 "Virtual Disk Format", VHD
 * 1.0 spec, VHDX 1.0 spec, VirtualBox's VDI header), checked against qemu 7.2's block drivers.
 */
import { execFile } from 'node:child_process';
import { readFile, unlink, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);

async function create(format: string, out: string, size: number, opts: string[] = []): Promise<Buffer> {
  await run('qemu-img', ['create', '-q', '-f', format, ...opts, out, `${size}`]);
  return readFile(out);
}

/** A vmdk text descriptor of `createType` whose one extent line (`RW <sectors> <kind> "<ref>" …`) names `ref`. */
export function vmdkDescriptor(createType: string, kind: string, ref: string, sectors = 2048): string {
  const offset = kind === 'FLAT' ? ' 0' : '';
  return [
    '# Disk DescriptorFile',
    'version=1',
    'CID=fffffffe',
    'parentCID=ffffffff',
    `createType="${createType}"`,
    '',
    `RW ${sectors} ${kind} "${ref}"${offset}`,
    '',
  ].join('\n');
}

/** The createTypes qemu opens from a descriptor, with the extent kind each one uses. */
export const VMDK_DESCRIPTOR_TYPES: [string, string][] = [
  ['monolithicFlat', 'FLAT'],
  ['twoGbMaxExtentFlat', 'FLAT'],
  ['twoGbMaxExtentSparse', 'SPARSE'],
  ['vmfs', 'VMFS'],
  ['vmfsSparse', 'VMFSSPARSE'],
  ['seSparse', 'SESPARSE'],
];

/** Replaces the descriptor embedded at sector 1 of a sparse vmdk made by qemu-img. */
function embed(b: Buffer, descriptor: string): void {
  const d = Buffer.from(descriptor, 'latin1');
  b.fill(0, 512, 512 + 20 * 512);
  d.copy(b, 512);
}

/**
 * A monolithicSparse vmdk whose header says capacity 0 (little-endian u64 at 12) while keeping its descriptor
 * offset: qemu then parses the embedded descriptor as if it were a descriptor file and opens its extents.
 */
export async function vmdkEmbeddedDescriptor(out: string, descriptor: string): Promise<void> {
  const b = await create('vmdk', out, 1 << 20, ['-o', 'subformat=monolithicSparse']);
  b.writeBigUInt64LE(0n, 12);
  embed(b, descriptor);
  await writeFile(out, b);
}

/** A monolithicSparse vmdk (capacity kept) whose embedded descriptor names `parent` as parentFileNameHint. */
export async function vmdkParentHint(out: string, parent: string): Promise<void> {
  const b = await create('vmdk', out, 1 << 20, ['-o', 'subformat=monolithicSparse']);
  embed(
    b,
    [
      '# Disk DescriptorFile',
      'version=1',
      'CID=fffffffe',
      'parentCID=12345678',
      'createType="monolithicSparse"',
      `parentFileNameHint="${parent}"`,
      '',
      `RW 2048 SPARSE "${out}"`,
      '',
    ].join('\n'),
  );
  await writeFile(out, b);
}

/** The VHD checksum: one's complement of the byte sum with the checksum field taken as zero. */
function vhdChecksum(b: Buffer, field: number): number {
  let sum = 0;
  for (let i = 0; i < b.length; i++) if (i < field || i >= field + 4) sum += b[i]!;
  return ~sum >>> 0;
}

/**
 * A differencing VHD (disk type 4) naming `parent` in its dynamic header (parent unicode name, big-endian UTF-16)
 * and in a W2ku parent locator (absolute Windows path, little-endian UTF-16). qemu's vpc driver reads it as a plain
 * dynamic disk.
 */
export async function vhdDifferencing(out: string, parent: string): Promise<void> {
  const made = await create('vpc', out, 1 << 20, ['-o', 'subformat=dynamic']);
  const footer = Buffer.from(made.subarray(0, 512));
  footer.writeUInt32BE(4, 60);
  footer.writeUInt32BE(vhdChecksum(footer, 64), 64);
  const body = Buffer.from(made.subarray(0, made.length - 512));
  footer.copy(body, 0);
  const locator = Buffer.alloc(512);
  Buffer.from(parent, 'utf16le').copy(locator);
  const locatorAt = body.length;
  const dyn = body.subarray(512, 1536);
  const be = Buffer.from(parent, 'utf16le').swap16();
  be.copy(dyn, 64, 0, Math.min(be.length, 512));
  // Parent locator entry 0 at 576: code 'W2ku', data space (sectors), data length, reserved, data offset.
  dyn.write('W2ku', 576, 'latin1');
  dyn.writeUInt32BE(1, 580);
  dyn.writeUInt32BE(Buffer.byteLength(parent, 'utf16le'), 584);
  dyn.writeBigUInt64BE(BigInt(locatorAt), 592);
  dyn.writeUInt32BE(vhdChecksum(dyn, 36), 36);
  await writeFile(out, Buffer.concat([body, locator, footer]));
}

/** GUIDs as stored in VHDX (the first three fields little-endian). */
function guid(s: string): Buffer {
  const h = Buffer.from(s.replace(/-/g, ''), 'hex');
  const b = Buffer.from(h);
  b.writeUInt32LE(h.readUInt32BE(0), 0);
  b.writeUInt16LE(h.readUInt16BE(4), 4);
  b.writeUInt16LE(h.readUInt16BE(6), 6);
  return b;
}

/**
 * A differencing VHDX: the file parameters say HasParent and a parent locator metadata item names `parent`
 * (absolute_win32_path and relative_path). qemu 7.2 refuses such images while opening them.
 */
export async function vhdxDifferencing(out: string, parent: string): Promise<void> {
  const b = await create('vhdx', out, 4 << 20);
  // Region table at 192 KiB: find the metadata region (8B7CA206-4790-4B9A-B8FE-575F050F886E).
  const rt = 0x30000;
  const metaGuid = guid('8b7ca206-4790-4b9a-b8fe-575f050f886e');
  let meta = -1;
  for (let i = 0; i < b.readUInt32LE(rt + 8); i++) {
    const e = rt + 16 + i * 32;
    if (b.subarray(e, e + 16).equals(metaGuid)) meta = Number(b.readBigUInt64LE(e + 16));
  }
  if (meta < 0) throw new Error('no metadata region in the vhdx qemu-img made');
  const count = b.readUInt16LE(meta + 10);
  let end = 0;
  const fileParams = guid('caa16737-fa36-4d43-b3b6-33f0aa44e76b');
  for (let i = 0; i < count; i++) {
    const e = meta + 32 + i * 32;
    const off = b.readUInt32LE(e + 16);
    end = Math.max(end, off + b.readUInt32LE(e + 20));
    // File parameters: block size, then flags (bit 1: HasParent).
    if (b.subarray(e, e + 16).equals(fileParams))
      b.writeUInt32LE(b.readUInt32LE(meta + off + 4) | 2, meta + off + 4);
  }
  const kv: [string, string][] = [
    ['parent_linkage', '{00000000-0000-0000-0000-000000000001}'],
    ['absolute_win32_path', parent],
    ['relative_path', parent],
  ];
  const header = Buffer.alloc(20 + kv.length * 12);
  guid('b04aefb7-d19e-4a81-b789-25b8e9445913').copy(header, 0);
  header.writeUInt16LE(kv.length, 18);
  const strings: Buffer[] = [];
  let at = header.length;
  kv.forEach(([k, v], i) => {
    const [kb, vb] = [Buffer.from(k, 'utf16le'), Buffer.from(v, 'utf16le')];
    header.writeUInt32LE(at, 20 + i * 12);
    header.writeUInt32LE(at + kb.length, 24 + i * 12);
    header.writeUInt16LE(kb.length, 28 + i * 12);
    header.writeUInt16LE(vb.length, 30 + i * 12);
    strings.push(kb, vb);
    at += kb.length + vb.length;
  });
  const locator = Buffer.concat([header, ...strings]);
  const locOff = Math.ceil(end / 8) * 8;
  locator.copy(b, meta + locOff);
  const e = meta + 32 + count * 32;
  guid('a8d35f2d-b30b-454d-abf7-d3d84834ab0c').copy(b, e);
  b.writeUInt32LE(locOff, e + 16);
  b.writeUInt32LE(locator.length, e + 20);
  b.writeUInt32LE(6, e + 24); // IsVirtualDisk | IsRequired
  b.writeUInt16LE(count + 1, meta + 10);
  await writeFile(out, b);
}

/** A differencing VDI: image type 4 and a parent UUID (VDI names its parent by UUID only). */
export async function vdiDifferencing(out: string): Promise<void> {
  const b = await create('vdi', out, 1 << 20);
  b.writeUInt32LE(4, 0x4c);
  b.fill(0x11, 0x1b8, 0x1c8);
  await writeFile(out, b);
}

/**
 * A qcow2 with an external data file `ref` whose incompatible feature bit is cleared (the name stays in its header
 * extension). qemu-img create makes `ref`; it is removed again, for the caller to put a sentinel there.
 */
export async function qcow2DataFileWithoutBit(out: string, ref: string): Promise<void> {
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', `data_file=${ref}`, out, `${1 << 20}`]);
  await unlink(ref);
  const b = await readFile(out);
  b.writeBigUInt64BE(b.readBigUInt64BE(72) & ~(1n << 2n), 72);
  await writeFile(out, b);
}
