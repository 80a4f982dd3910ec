/**
 * The importer's side of upstream's registry node pull (`pullMethod: node`): the controller runs the user's image as
 * a `server` container that serves its `/disk/*` file on localhost:8100, and points the importer at it as a plain
 * HTTP source (IMPORTER_SOURCE=http, IMPORTER_ENDPOINT=http://localhost:8100/disk.img) with two files on a shared
 * volume: IMPORTER_READY_FILE, written by the server once it serves (holding the disk's file name), and
 * IMPORTER_DONE_FILE, which the importer creates when the import succeeded so the server exits.
 */
import { open, readFile, stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { ErrorKind, ImportError } from './errors.ts';
import { envsToLabels } from './source/registry.ts';

type Env = Record<string, string | undefined>;

/**
 * Waits (upstream: 60 s) for the ready file, then returns the endpoint with `disk.img` replaced by the file name the
 * server wrote into it (upstream's getHTTPEp). Without IMPORTER_READY_FILE the endpoint is returned as it is.
 */
export async function nodePullEndpoint(env: Env, endpoint: string, timeoutMs = 60_000): Promise<string> {
  const ready = env.IMPORTER_READY_FILE;
  if (!ready) return endpoint;
  const deadline = Date.now() + timeoutMs;
  // The file appears on a volume another container writes: polled, as upstream does (every 250 ms here).
  while (!(await stat(ready).catch(() => undefined))) {
    if (Date.now() >= deadline)
      throw new ImportError(ErrorKind.Transfer, `Timeout waiting for file ${ready}`);
    await sleep(250);
  }
  const name = (await readFile(ready, 'utf8')).trim();
  return name ? endpoint.replace(/disk\.img$/, '') + name : endpoint;
}

/** Tells the image's server container that the import is done (upstream's touchDoneFile). */
export async function touchDoneFile(env: Env): Promise<void> {
  const done = env.IMPORTER_DONE_FILE;
  if (!done) return;
  const fh = await open(done, 'wx').catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw err;
    return undefined;
  });
  await fh?.close();
}

/**
 * upstream getServerInfo + envsToLabels for node pull: the image server's /info lists the image's environment, whose
 * KUBEVIRT_IO_* variables become PVC labels as they do for a pod pull.
 */
export async function nodePullLabels(endpoint: string, timeoutMs = 10_000): Promise<Record<string, string>> {
  const url = new URL('/info', endpoint);
  let info: { Env?: unknown };
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    info = (await res.json()) as { Env?: unknown };
  } catch (err) {
    throw new ImportError(
      ErrorKind.Transfer,
      `cannot read the image's environment from ${url.toString()}: ${(err as Error).message}`,
    );
  }
  const env = Array.isArray(info.Env) ? info.Env.filter((e): e is string => typeof e === 'string') : [];
  return envsToLabels(env);
}
