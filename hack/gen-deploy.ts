// Writes deploy/cdi/*.yaml from src/deploy (npm run gen:deploy). The snapshot test fails when they differ.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { renderDeployFiles } from '../src/deploy/controller.ts';

const dir = join(import.meta.dirname, '..', 'deploy', 'cdi');
await mkdir(dir, { recursive: true });
for (const [name, text] of Object.entries(renderDeployFiles())) {
  await writeFile(join(dir, name), text);
  console.log(`wrote deploy/cdi/${name}`);
}
