/**
 * One import of a source into a file under `dir`, as the source tests need it:
 *   const { r, out } = await importFile(source, dir, { checksum: 'md5:…' });   // the result and the target file
 *   await importFails(source, dir, /message/);   // fails with a one-line message matching it, and leaves no target
 *   const r = await importDisk({ source, target });   // a disk source (imageio, vddk): the planner's `disk` plan
 * A scratch directory (dir/scratch) is offered unless `scratch: false`.
 */
import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { parseChecksum } from '../../src/importer/checksum.ts';
import { ContentType, runImport, type ImportRequest, type ImportResult } from '../../src/importer/import.ts';
import type { ImportSource } from '../../src/importer/source/source.ts';

let n = 0;

export interface ImportFileOptions {
  checksum?: string;
  scratch?: boolean;
}

function request(
  source: ImportSource,
  out: string,
  dir: string,
  o: ImportFileOptions,
): Parameters<typeof runImport>[0] {
  return {
    source,
    contentType: ContentType.KubeVirt,
    target: { kind: 'file', path: out },
    ...(o.checksum ? { checksum: parseChecksum(o.checksum) } : {}),
    ...(o.scratch === false ? {} : { scratchDir: path.join(dir, 'scratch') }),
  };
}

export async function importFile(
  source: ImportSource,
  dir: string,
  o: ImportFileOptions = {},
): Promise<{ r: ImportResult; out: string }> {
  const out = path.join(dir, `out-${n++}.img`);
  return { r: await runImport(request(source, out, dir, o)), out };
}

export async function importFails(
  source: ImportSource,
  dir: string,
  pattern: RegExp,
  o: ImportFileOptions = {},
): Promise<void> {
  const out = path.join(dir, `fail-${n++}.img`);
  await assert.rejects(runImport(request(source, out, dir, o)), (err: Error) => {
    assert.match(err.message, pattern);
    assert.doesNotMatch(err.message, /\n/, 'one line');
    return true;
  });
  assert.equal(await stat(out).catch(() => undefined), undefined, 'no target left behind');
}

/** An import of a disk source (imageio, vddk) through runImport, whose planner picks the `disk` plan. */
export function importDisk(
  o: Pick<ImportRequest, 'source' | 'target'> & Partial<ImportRequest>,
): Promise<ImportResult> {
  return runImport({ contentType: ContentType.KubeVirt, ...o });
}
