/**
 * The importer pod's contract, as upstream's cmd/cdi-importer (cdi-upstream.md §2.1, §3):
 * configuration from env vars, target /data/disk.img (Filesystem; /data for archives) or /dev/cdi-block-volume
 * (Block, when it exists), scratch at /scratch when mounted, and the result in /dev/termination-log:
 *   success:           JSON {"scratchSpaceRequired":false,"preallocationApplied":…,"message":"Import Complete"}, exit 0
 *   scratch needed:    JSON {"scratchSpaceRequired":true,…}, exit 0 (the controller recreates the pod with scratch)
 *   checksum mismatch: JSON {"message":"Unable to process data: checksum validation failed: checksum mismatch: …"},
 *                      exit 0 (fatal, no retry)
 *   refused for good:  JSON {"fatalReason":"ChecksumUnsupported","message":"Unable to process data: …"}, exit 0
 *                      (fatal, no retry: a request that can never succeed, e.g. a checksum for imageio or vddk)
 *   unreachable:       plain text "Unable to connect to <kind> data source: …", exit 1 (the pod restarts)
 *   other errors:      plain text "Unable to process data: …", exit 1 (the pod restarts)
 * A success may carry `warnings` (upstream's content-type warning; our addition, which upstream's parser ignores) and
 * what the source adds (terminationInfo(): vddk's `vddkInfo`, the registry image's `labels`).
 * Every source, disk sources (imageio, vddk) included, goes through runImport and its planner (plan.ts).
 * The paths can be moved for tests with CDI_IMPORTER_DATA_DIR, CDI_IMPORTER_BLOCK_PATH, CDI_IMPORTER_SCRATCH_DIR,
 * CDI_IMPORTER_TERMINATION_LOG, CDI_IMPORTER_PROXY_CERT_DIR, CDI_IMPORTER_SECRET_HEADERS_DIR (and
 * CDI_IMPORTER_METRICS_PORT, default 8443; "off" disables the endpoint).
 */
import { stat, statfs, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseChecksum } from './checksum.ts';
import { describe, ErrorKind, ImportError, RefusedReason, RefusedRequest } from './errors.ts';
import { ContentType, runImport, type CacheMode } from './import.ts';
import { cgroupMemoryLimit, describeLimits, limitsFor } from './memory.ts';
import { startProgressMetrics, type MetricsServer } from './metrics.ts';
import { nodePullEndpoint, nodePullLabels, touchDoneFile } from './node-pull.ts';
import { Progress } from './progress.ts';
import { parseSize, usableSpace } from './size.ts';
import { deviceSize } from './sink/raw.ts';
import { BlankSource } from './source/blank.ts';
import { GcsSource } from './source/gcs.ts';
import { HttpSource, readSecretHeaders } from './source/http.ts';
import { ImageioSource } from './source/imageio.ts';
import { RegistrySource } from './source/registry.ts';
import { S3Source } from './source/s3.ts';
import type { ImportSource } from './source/source.ts';
import { VddkSource } from './source/vddk.ts';
import { Ann } from '../api/constants.ts';
import type { TerminationMessage } from '../api/termination.ts';

type Env = Record<string, string | undefined>;

/** Sources whose disk is read by its data extents (ImportSource.disk()). */
const DISK_SOURCES = ['imageio', 'vddk'];

/** Sources that import content type kubevirt only (upstream: registry and imageio). */
const KUBEVIRT_ONLY = ['registry', 'imageio', 'vddk'];

export interface PodPaths {
  dataDir: string;
  blockPath: string;
  scratchDir: string;
  terminationLog: string;
}

export function podPaths(env: Env): PodPaths {
  return {
    dataDir: env.CDI_IMPORTER_DATA_DIR ?? '/data',
    blockPath: env.CDI_IMPORTER_BLOCK_PATH ?? '/dev/cdi-block-volume',
    scratchDir: env.CDI_IMPORTER_SCRATCH_DIR ?? '/scratch',
    terminationLog: env.CDI_IMPORTER_TERMINATION_LOG ?? '/dev/termination-log',
  };
}

// The termination message's shape is shared with the controller that reads it.
export type { TerminationMessage } from '../api/termination.ts';

/** Go's strconv.ParseBool. */
export function parseBool(name: string, v: string | undefined, dflt: boolean): boolean {
  if (v === undefined || v === '') return dflt;
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  throw new ImportError(
    ErrorKind.Invalid,
    `the ${name} environment variable is with a wrong value "${v}"; should be "true" or "false"`,
  );
}

export function terminationJson(msg: TerminationMessage): string {
  let s = JSON.stringify(msg);
  if (Buffer.byteLength(s) > 4096 && msg.message) {
    s = JSON.stringify({
      ...msg,
      message:
        msg.message.slice(0, Math.max(0, msg.message.length - (Buffer.byteLength(s) - 4096) - 3)) + '...',
    });
  }
  return s;
}

export async function writeTermination(p: PodPaths, text: string): Promise<void> {
  // Upstream writes only the first line; kubelet keeps at most 4096 bytes.
  const line = text.replace(/\n/g, ' ');
  await writeFile(p.terminationLog, Buffer.from(line).subarray(0, 4096), { mode: 0o600 }).catch(
    (err: Error) => {
      process.stderr.write(`cannot write the termination message to ${p.terminationLog}: ${err.message}\n`);
    },
  );
}

async function makeSource(env: Env, caDirs: string[], log: (line: string) => void): Promise<ImportSource> {
  const kind = env.IMPORTER_SOURCE ?? '';
  if (kind === 'none' || kind === 'blank') return new BlankSource();
  if (kind === 'http') {
    const headers = Object.keys(env)
      .filter((k) => /^IMPORTER_EXTRA_HEADER_\d+$/.test(k))
      .sort((a, b) => Number(a.slice(22)) - Number(b.slice(22)))
      .map((k) => env[k]!)
      .filter((h) => h !== '');
    const user = env.IMPORTER_ACCESS_KEY_ID;
    return new HttpSource({
      url: env.IMPORTER_ENDPOINT ?? '',
      caDir: caDirs,
      insecureSkipVerify: parseBool('INSECURE_TLS', env.INSECURE_TLS, false),
      headers,
      // Upstream's secretExtraHeaders: the controller mounts each secret under /extraheaders/<n>/.
      secretHeaders: await readSecretHeaders(env.CDI_IMPORTER_SECRET_HEADERS_DIR ?? '/extraheaders'),
      ...(user ? { user, password: env.IMPORTER_SECRET_KEY ?? '' } : {}),
      userAgent: 'cdi-ts-importer',
    });
  }
  const url = env.IMPORTER_ENDPOINT ?? '';
  const user = env.IMPORTER_ACCESS_KEY_ID || undefined;
  const secret = env.IMPORTER_SECRET_KEY ?? '';
  const insecure = parseBool('INSECURE_TLS', env.INSECURE_TLS, false);
  if (kind === 'registry') {
    // INSECURE_TLS: the controller sets it for registries listed in CDIConfig insecureRegistries.
    return new RegistrySource({
      url,
      ...(user ? { user, password: secret } : {}),
      caDirs,
      insecure,
      ...(env.IMPORTER_REGISTRY_IMAGE_ARCHITECTURE
        ? { architecture: env.IMPORTER_REGISTRY_IMAGE_ARCHITECTURE }
        : {}),
      log,
    });
  }
  if (kind === 's3') {
    return new S3Source({
      url,
      ...(user ? { accessKeyId: user, secretKey: secret } : {}),
      caDirs,
      insecureSkipVerify: insecure,
    });
  }
  if (kind === 'gcs') {
    const credentialsFile = env.GOOGLE_APPLICATION_CREDENTIALS;
    return new GcsSource({ url, ...(credentialsFile ? { credentialsFile } : {}), caDirs, env });
  }
  const checkpoints = {
    ...(env.IMPORTER_CURRENT_CHECKPOINT ? { currentCheckpoint: env.IMPORTER_CURRENT_CHECKPOINT } : {}),
    ...(env.IMPORTER_PREVIOUS_CHECKPOINT ? { previousCheckpoint: env.IMPORTER_PREVIOUS_CHECKPOINT } : {}),
  };
  if (kind === 'imageio') {
    return new ImageioSource({
      endpoint: url,
      user: user ?? '',
      password: secret,
      caDir: caDirs,
      insecureSkipVerify: insecure,
      diskId: env.IMPORTER_DISK_ID ?? '',
      ...checkpoints,
      log,
    });
  }
  if (kind === 'vddk') {
    return new VddkSource({
      endpoint: url,
      user: user ?? '',
      password: secret,
      thumbprint: env.IMPORTER_THUMBPRINT ?? '',
      uuid: env.IMPORTER_UUID ?? '',
      backingFile: env.IMPORTER_BACKING_FILE ?? '',
      ...checkpoints,
      ...(env.IMPORTER_CERT_DIR ? { caDir: [env.IMPORTER_CERT_DIR] } : {}),
      insecureSkipVerify: insecure,
      ...(env.CDI_IMPORTER_VDDK_LIBDIR ? { libdir: env.CDI_IMPORTER_VDDK_LIBDIR } : {}),
      ...(env.CDI_IMPORTER_VDDK_PLUGIN ? { plugin: env.CDI_IMPORTER_VDDK_PLUGIN } : {}),
      ...(env.CDI_IMPORTER_VDDK_ARGS_DIR ? { argsDir: env.CDI_IMPORTER_VDDK_ARGS_DIR } : {}),
      log,
    });
  }
  if (kind === 'upload') {
    throw new ImportError(
      ErrorKind.Invalid,
      `Unknown data source: ${kind} (not implemented yet in cdi-ts; available: http, registry, s3, gcs, imageio, vddk, none)`,
    );
  }
  throw new ImportError(ErrorKind.Invalid, `Unknown data source: ${kind}`);
}

async function exists(p: string): Promise<boolean> {
  return (await stat(p).catch(() => undefined)) !== undefined;
}

/** Runs the whole pod protocol; returns the exit code. */
export async function runPodImporter(
  env: Env,
  log: (line: string) => void = (l) => process.stderr.write(l + '\n'),
): Promise<number> {
  const p = podPaths(env);
  const progress = new Progress();
  let metrics: MetricsServer | undefined;
  const completeMessage = 'Import Complete';
  try {
    const portText = env.CDI_IMPORTER_METRICS_PORT ?? '8443';
    if (portText !== 'off') {
      metrics = await startProgressMetrics({
        progress,
        ownerUID: env.OWNER_UID ?? '',
        port: Number(portText),
      });
      log(`progress metrics on https://0.0.0.0:${metrics.port}/metrics`);
    }
    const contentType = (env.IMPORTER_CONTENTTYPE || ContentType.KubeVirt) as ContentType;
    if (contentType !== ContentType.KubeVirt && contentType !== ContentType.Archive) {
      throw new ImportError(ErrorKind.Invalid, `Unsupported content type ${env.IMPORTER_CONTENTTYPE ?? ''}`);
    }
    const preallocate = parseBool('PREALLOCATION', env.PREALLOCATION, false);
    const overhead = env.FILESYSTEM_OVERHEAD ? Number(env.FILESYSTEM_OVERHEAD) : 0;
    if (!Number.isFinite(overhead) || overhead < 0 || overhead >= 1) {
      throw new ImportError(
        ErrorKind.Invalid,
        `FILESYSTEM_OVERHEAD "${env.FILESYSTEM_OVERHEAD}" is not a fraction like 0.055`,
      );
    }
    const checksum = env.IMPORTER_CHECKSUM ? parseChecksum(env.IMPORTER_CHECKSUM) : undefined;
    // A disk read by its data extents is never read whole, so no digest of it is ever computed (plan.ts diskPlan):
    // refused for good before the source is asked anything (no image transfer opened, no VM snapshot taken).
    const sourceKind = env.IMPORTER_SOURCE ?? '';
    if (checksum && DISK_SOURCES.includes(sourceKind)) {
      throw new RefusedRequest(
        RefusedReason.ChecksumUnsupported,
        `a checksum (${Ann.Checksum}) cannot be verified when importing from ${sourceKind}: its disk is read by its data extents, never every byte in one stream, so no digest of the whole disk is ever computed. Remove the annotation and create the DataVolume (or PVC) again`,
      );
    }
    const block = await exists(p.blockPath);
    // Upstream mounts the trusted proxy CA (ConfigMap key ca.crt) at /proxycerts/ and trusts it besides the cert dir.
    const proxyCerts = env.CDI_IMPORTER_PROXY_CERT_DIR ?? '/proxycerts';
    const caDirs = [
      ...(env.IMPORTER_CERT_DIR ? [env.IMPORTER_CERT_DIR] : []),
      ...((await exists(proxyCerts)) ? [proxyCerts] : []),
    ];
    // Registry node pull: the endpoint is served by the image's own container once its ready file exists.
    if (env.IMPORTER_READY_FILE && env.IMPORTER_SOURCE !== 'none' && env.IMPORTER_SOURCE !== 'blank') {
      log(`waiting for ${env.IMPORTER_READY_FILE}`);
      env = { ...env, IMPORTER_ENDPOINT: await nodePullEndpoint(env, env.IMPORTER_ENDPOINT ?? '') };
    }
    const source: ImportSource = await makeSource(env, caDirs, log);
    // What the source adds to the termination message once it succeeded (taken before any narrowing of `source`).
    const terminationInfo = (): Record<string, unknown> => source.terminationInfo?.() ?? {};
    const kind = env.IMPORTER_SOURCE ?? '';
    // Upstream's cmd/cdi-importer refuses this before it reads anything (registry, imageio; vddk too here).
    if (KUBEVIRT_ONLY.includes(kind) && contentType !== ContentType.KubeVirt) {
      throw new ImportError(
        ErrorKind.Invalid,
        `Unsupported content type ${contentType} when importing from ${kind}`,
      );
    }
    const blank = source instanceof BlankSource;
    if (blank && contentType === ContentType.Archive) {
      throw new ImportError(ErrorKind.Invalid, 'Cannot create empty disk with content type archive');
    }
    const requested = env.IMPORTER_IMAGE_SIZE ? parseSize(env.IMPORTER_IMAGE_SIZE) : undefined;
    let target;
    let available: number;
    if (block) {
      available = usableSpace(overhead, await deviceSize(p.blockPath));
      target = { kind: 'block' as const, path: p.blockPath };
    } else {
      const s = await statfs(p.dataDir);
      const free = s.bavail * s.bsize;
      available = usableSpace(overhead, requested !== undefined ? Math.min(requested, free) : free);
      target =
        contentType === ContentType.Archive
          ? { kind: 'dir' as const, path: p.dataDir }
          : { kind: 'file' as const, path: path.join(p.dataDir, 'disk.img') };
    }
    if (blank && block && !preallocate) {
      log('Blank block without preallocation is exactly an empty PVC, done populating');
      await writeTermination(p, terminationJson({ preallocationApplied: false, message: completeMessage }));
      return 0;
    }
    const cacheMode: CacheMode = env.CACHE_MODE === 'TRYNONE' ? 'trynone' : 'writeback';
    // Every child's memory is sized from the pod's limit, so our own children never get the pod OOM-killed.
    const memory = await cgroupMemoryLimit();
    const limits = limitsFor(memory?.bytes);
    log(describeLimits(memory, limits));
    const scratch = (await stat(p.scratchDir).catch(() => undefined))?.isDirectory()
      ? p.scratchDir
      : undefined;
    const r = await runImport({
      source,
      contentType,
      target,
      ...(target.kind === 'file' ? { size: available } : {}),
      available,
      ...(checksum ? { checksum } : {}),
      preallocate,
      ...(scratch ? { scratchDir: scratch } : {}),
      cache: cacheMode,
      limits,
      progress,
      log,
    });
    const nodePull = env.IMPORTER_PULL_METHOD === 'node' && env.IMPORTER_READY_FILE;
    // node pull: the image's KUBEVIRT_IO_* env, from its server's /info (a pod pull's come from terminationInfo())
    const labels = nodePull ? await nodePullLabels(env.IMPORTER_ENDPOINT ?? '') : {};
    await touchDoneFile(env);
    log(
      r.disk
        ? `imported ${source.description}: ${r.disk.delta ? 'delta' : 'disk'} of ${r.virtualSize} bytes, ${r.disk.dataBytes} bytes of data read, ${r.disk.zeroBytes} of zeros not transferred`
        : `imported ${source.description}: ${[...r.layers, r.format].join(' -> ')} via ${r.path}, ${r.size} bytes`,
    );
    await writeTermination(
      p,
      terminationJson({
        scratchSpaceRequired: false,
        preallocationApplied: r.preallocationApplied,
        ...terminationInfo(),
        ...(Object.keys(labels).length > 0 ? { labels } : {}),
        ...(r.warnings.length > 0 ? { warnings: r.warnings } : {}),
        message: completeMessage,
      }),
    );
    return 0;
  } catch (err) {
    const text = describe(err);
    log(`error: ${text}`);
    if (err instanceof ImportError && err.kind === ErrorKind.ScratchRequired) {
      await writeTermination(
        p,
        terminationJson({
          scratchSpaceRequired: true,
          preallocationApplied: false,
          message: completeMessage,
        }),
      );
      return 0;
    }
    if (err instanceof ImportError && err.kind === ErrorKind.Checksum) {
      await writeTermination(p, terminationJson({ message: `Unable to process data: ${text}` }));
      return 0;
    }
    // fatal as a mismatch is, but upstream's controller knows only that one: the reason says it to ours
    if (err instanceof RefusedRequest) {
      await writeTermination(
        p,
        terminationJson({ fatalReason: err.reason, message: `Unable to process data: ${text}` }),
      );
      return 0;
    }
    // Upstream writes a source it cannot reach as "Unable to connect to <kind> data source: …" (the error's text).
    const connect = err instanceof ImportError && err.kind === ErrorKind.Connect;
    await writeTermination(p, connect ? text : `Unable to process data: ${text}`);
    return 1;
  } finally {
    await metrics?.close();
  }
}
