/**
 * `npm run demo` (for now, without a cluster): makes a small sample disk (seeded raw → qcow2, plus an xz copy),
 * serves it over HTTP on loopback with the test file server, shows `cdi inspect`, runs `cdi import` for both
 * (progress on the terminal), and verifies that the imported disk has the md5 of the original.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startFileServer } from '../test/support/fileserver.ts';
import { makeSeededDisk, makeVariant, md5File } from '../test/support/images.ts';

const CDI = path.resolve(import.meta.dirname, '..', 'bin', 'cdi.js');

function cdi(args: string[]): Promise<number> {
  process.stdout.write(`\n$ cdi ${args.join(' ')}\n`);
  const child = spawn(process.execPath, [CDI, ...args], { stdio: 'inherit' });
  return new Promise((resolve) => child.on('close', (code) => resolve(code ?? 1)));
}

const dir = await mkdtemp(path.join(tmpdir(), 'cdi-demo-'));
let failed = false;
const srv = await startFileServer({ root: dir, throttleBytesPerSec: 32 << 20 });
try {
  process.stdout.write(`==> making a 64 MiB sample disk in ${dir}\n`);
  const disk = await makeSeededDisk(dir, { size: 64 << 20, seed: 'demo', chunk: 4 << 20 });
  await makeVariant(disk.path, dir, 'qcow2');
  await makeVariant(disk.path, dir, 'xz');
  process.stdout.write(`==> serving it at ${srv.url}/ (throttled to 32 MiB/s so the progress is visible)\n`);
  process.stdout.write(`    original md5 ${disk.md5}\n`);
  if ((await cdi(['inspect', `${srv.url}/disk.qcow2`])) !== 0) failed = true;
  for (const [file, out] of [
    ['disk.qcow2', 'imported-from-qcow2.img'],
    ['disk.xz', 'imported-from-xz.img'],
  ] as const) {
    const target = path.join(dir, out);
    const code = await cdi(['import', `${srv.url}/${file}`, '--to', target, '--size', '100Mi']);
    const sum = code === 0 ? await md5File(target, disk.size) : '(import failed)';
    const ok = sum === disk.md5;
    failed ||= !ok;
    process.stdout.write(
      `    md5 of the first 64 MiB of ${out}: ${sum} ${ok ? '✔ matches the original' : '✘ DIFFERS'}\n`,
    );
  }
} finally {
  await srv.close();
  await rm(dir, { recursive: true, force: true });
}
process.stdout.write(failed ? '\ndemo FAILED\n' : '\ndemo OK\n');
process.exitCode = failed ? 1 : 0;
