// Writes the generated manifests into deploy/: npm run gen. src/api/crds.test.ts fails when they are stale.
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { crdFiles } from '../src/api/crds.ts';

const dir = join(import.meta.dirname, '..', 'deploy', 'crds');
await mkdir(dir, { recursive: true });
const files = crdFiles();
const wanted = new Set(files.map((f) => f.file));
for (const name of await readdir(dir)) {
  if (name.endsWith('.yaml') && !wanted.has(name)) await rm(join(dir, name));
}
for (const f of files) await writeFile(join(dir, f.file), f.yaml);
console.log(`wrote ${files.length} CRDs to ${dir}`);
