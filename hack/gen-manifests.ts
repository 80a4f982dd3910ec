// Writes every generated manifest into deploy/ (npm run gen): the CRDs from src/api into deploy/crds, the
// controller's RBAC, Deployment and Service from src/deploy into deploy/cdi. Snapshot tests
// (src/api/crds.test.ts, src/deploy/controller.test.ts) fail when the files are stale.
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { crdFiles } from '../src/api/crds.ts';
import { renderDeployFiles } from '../src/deploy/controller.ts';

/** Writes `files` into deploy/<sub>, removing YAML files there that are no longer generated. */
async function writeDir(sub: string, files: Record<string, string>): Promise<void> {
  const dir = join(import.meta.dirname, '..', 'deploy', sub);
  await mkdir(dir, { recursive: true });
  for (const name of await readdir(dir)) {
    if (name.endsWith('.yaml') && !(name in files)) await rm(join(dir, name));
  }
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  console.log(`wrote ${Object.keys(files).length} files to deploy/${sub}`);
}

await writeDir('crds', Object.fromEntries(crdFiles().map((f) => [f.file, f.yaml])));
await writeDir('cdi', renderDeployFiles());
