/** Crafted tar archives for tests: entries exactly as given (names, types, link targets), packed by tar-stream. */
import tar from 'tar-stream';

export interface TarEntry {
  name: string;
  type?: 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'fifo';
  linkname?: string;
  /** Content of a file entry (default: empty). */
  body?: string;
  mode?: number;
}

export async function packTar(entries: TarEntry[]): Promise<Buffer> {
  const p = tar.pack();
  const chunks: Buffer[] = [];
  p.on('data', (c: unknown) => {
    chunks.push(c as Buffer);
  });
  const done = new Promise<void>((resolve) => p.on('end', () => resolve()));
  for (const e of entries) {
    const type = e.type ?? 'file';
    const header = {
      name: e.name,
      type,
      ...(e.linkname !== undefined ? { linkname: e.linkname } : {}),
      ...(e.mode !== undefined ? { mode: e.mode } : {}),
      ...(type === 'character-device' ? { devmajor: 1, devminor: 3 } : {}),
    };
    if (type === 'file') p.entry(header, e.body ?? '');
    else p.entry(header);
  }
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}
