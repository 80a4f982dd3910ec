/**
 * The upload server pod's contract, as upstream's cmd/cdi-uploadserver: configuration from env vars, the result in
 * the termination message (the importer's JSON shape):
 *   success:          {"preallocationApplied":false,"message":"Upload Complete"}, exit 0
 *   deadline passed:  {"deadlinePassed":true,"message":"Deadline Passed"}, exit 0 (the controller makes a new pod)
 *   failure:          "Unable to process data: <what>", exit 1 (processing failed after an async upload was taken in)
 *
 *   LISTEN_ADDRESS (0.0.0.0), LISTEN_PORT (8443)
 *   TLS_CERT_FILE, TLS_KEY_FILE      the serving certificate (required)
 *   CLIENT_CERT_FILE                 CA bundle client certificates must chain to (required)
 *   CLIENT_NAME                      the CN a client certificate must have
 *   UPLOAD_IMAGE_SIZE                the PVC's requested size (a quantity)
 *   FILESYSTEM_OVERHEAD, PREALLOCATION, DEADLINE (RFC 3339), DESTINATION (the file or block device)
 *   TLS_MIN_VERSION, TLS_CIPHERS     from CDIConfig's TLS profile
 *   CDI_UPLOAD_RESUME_WINDOW         cdi-ts: seconds a cut-off resumable upload waits for its continuation (600)
 * Tests move the paths with CDI_IMPORTER_DATA_DIR, CDI_IMPORTER_SCRATCH_DIR, CDI_IMPORTER_TERMINATION_LOG.
 */
import { readFile } from 'node:fs/promises';
import { tlsProfileFromEnv, readKeyPair } from '../certs/tls.ts';
import { describe } from '../importer/errors.ts';
import { parseBool, podPaths, terminationJson, writeTermination } from '../importer/pod.ts';
import { parseSize } from '../importer/size.ts';
import { UploadServer, type UploadServerConfig } from './server.ts';
import { cgroupMemoryLimit, describeLimits, limitsFor } from '../importer/memory.ts';
import { targetPaths } from './target.ts';

type Env = Record<string, string | undefined>;

function required(env: Env, name: string): string {
  const v = env[name];
  if (!v)
    throw new Error(
      `${name} is not set: the upload server needs TLS_CERT_FILE, TLS_KEY_FILE and CLIENT_CERT_FILE`,
    );
  return v;
}

export async function configFromEnv(env: Env, log: (l: string) => void): Promise<UploadServerConfig> {
  const { cert, key } = await readKeyPair(required(env, 'TLS_CERT_FILE'), required(env, 'TLS_KEY_FILE'));
  const caFile = required(env, 'CLIENT_CERT_FILE');
  const clientCa = await readFile(caFile, 'utf8').catch((e: NodeJS.ErrnoException) => {
    throw new Error(`cannot read CLIENT_CERT_FILE ${caFile}: ${e.code ?? e.message}`);
  });
  const port = env.LISTEN_PORT ? Number(env.LISTEN_PORT) : 8443;
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`LISTEN_PORT "${env.LISTEN_PORT}" is not a port`);
  const overhead = env.FILESYSTEM_OVERHEAD ? Number(env.FILESYSTEM_OVERHEAD) : 0;
  if (!Number.isFinite(overhead) || overhead < 0 || overhead >= 1) {
    throw new Error(`FILESYSTEM_OVERHEAD "${env.FILESYSTEM_OVERHEAD}" is not a fraction like 0.055`);
  }
  let deadline: Date | undefined;
  if (env.DEADLINE) {
    deadline = new Date(env.DEADLINE);
    if (Number.isNaN(deadline.getTime()))
      throw new Error(`DEADLINE "${env.DEADLINE}" is not an RFC 3339 time`);
  }
  const window = env.CDI_UPLOAD_RESUME_WINDOW ? Number(env.CDI_UPLOAD_RESUME_WINDOW) : undefined;
  if (window !== undefined && !(window > 0))
    throw new Error('CDI_UPLOAD_RESUME_WINDOW must be a positive number of seconds');
  if (!env.CLIENT_NAME)
    throw new Error('CLIENT_NAME is not set: the CN the upload proxy client certificate must have');
  // As the importer pod: every child's memory is sized from the pod's limit, so no child gets the pod OOM-killed.
  const memory = await cgroupMemoryLimit();
  const limits = limitsFor(memory?.bytes);
  log(describeLimits(memory, limits));
  return {
    bindAddress: env.LISTEN_ADDRESS ?? '0.0.0.0',
    port,
    tls: { cert, key, clientCa, ...tlsProfileFromEnv(env) },
    clientName: env.CLIENT_NAME,
    paths: targetPaths(env),
    ...(env.UPLOAD_IMAGE_SIZE ? { imageSize: parseSize(env.UPLOAD_IMAGE_SIZE) } : {}),
    filesystemOverhead: overhead,
    preallocation: parseBool('PREALLOCATION', env.PREALLOCATION, false),
    ...(deadline ? { deadline } : {}),
    ...(window !== undefined ? { resumeWindowMs: window * 1000 } : {}),
    limits,
    log,
  };
}

/** Runs the whole pod protocol; returns the exit code. */
export async function runUploadServerPod(
  env: Env,
  log: (line: string) => void = (l) => process.stderr.write(l + '\n'),
  onListening: (port: number) => void = () => {},
): Promise<number> {
  const p = podPaths(env);
  let server: UploadServer | undefined;
  try {
    server = new UploadServer(await configFromEnv(env, log));
    const port = await server.listen();
    log(`upload server listening on ${env.LISTEN_ADDRESS ?? '0.0.0.0'}:${port}`);
    onListening(port);
    const r = await server.result();
    await server.close();
    const msg = r.deadlinePassed
      ? { deadlinePassed: true, message: 'Deadline Passed' }
      : {
          preallocationApplied: r.preallocationApplied,
          message: r.cloneTarget ? 'Clone Complete' : 'Upload Complete',
        };
    await writeTermination(p, terminationJson(msg));
    log('upload server exited successfully');
    return 0;
  } catch (e) {
    const text = describe(e);
    log(`error: ${text}`);
    await writeTermination(p, `Unable to process data: ${text}`);
    await server?.close().catch(() => undefined);
    return 1;
  }
}
