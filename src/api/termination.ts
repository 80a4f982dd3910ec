// The termination message: the one thing a worker pod tells the controller, as JSON in /dev/termination-log (at
// most 4096 bytes, kubelet's limit) when it exits 0 (upstream pkg/common TerminationMessage). The importer writes it
// (src/importer/pod.ts), the import controller reads it (src/controller/import/termination.ts); both take the shape
// from here. `warnings` is our addition (upstream's parser ignores unknown fields): what a successful import wants
// the user to know, e.g. "Unexpected content type 'text/html'. Content might not be a KubeVirt image.", which the
// controller turns into Warning events on the DataVolume; `fatalReason` too: a request refused for good.

export interface TerminationMessage {
  scratchSpaceRequired?: boolean;
  preallocationApplied?: boolean;
  deadlinePassed?: boolean;
  /** vddk: what nbdkit's log said, under upstream's Go field names (VddkInfo has no json tags). */
  vddkInfo?: { Version?: string; Host?: string };
  labels?: Record<string, string>;
  /** Warnings of a successful import (absent when there are none). */
  warnings?: string[];
  /**
   * Ours, like `warnings`: set when the importer refused the request for good (a checksum for an imageio or vddk
   * source). Fatal like a checksum mismatch: the controller fails the import with this as the Running condition's
   * reason and `message` as its message, instead of the pod being restarted.
   */
  fatalReason?: string;
  message?: string;
}

/** kubelet keeps at most this many bytes of a termination message. */
export const TerminationMessageMaxBytes = 4096;

/**
 * Parses the JSON of a termination message into its known fields (others and wrong types are dropped). Throws a
 * one-line error when the text is not a JSON object.
 */
export function parseTerminationJson(text: string): TerminationMessage {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new Error(`not JSON: ${text.slice(0, 120)}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error('not a JSON object');
  const o = raw as Record<string, unknown>;
  const msg: TerminationMessage = {};
  for (const k of ['scratchSpaceRequired', 'preallocationApplied', 'deadlinePassed'] as const) {
    if (typeof o[k] === 'boolean') msg[k] = o[k];
  }
  if (typeof o['message'] === 'string') msg.message = o['message'];
  if (typeof o['fatalReason'] === 'string' && o['fatalReason'] !== '') msg.fatalReason = o['fatalReason'];
  const v = o['vddkInfo'];
  if (typeof v === 'object' && v !== null) {
    const vi = v as Record<string, unknown>;
    msg.vddkInfo = {
      ...(typeof vi['Version'] === 'string' ? { Version: vi['Version'] } : {}),
      ...(typeof vi['Host'] === 'string' ? { Host: vi['Host'] } : {}),
    };
  }
  const l = o['labels'];
  if (typeof l === 'object' && l !== null && !Array.isArray(l)) {
    msg.labels = Object.fromEntries(
      Object.entries(l).filter((e): e is [string, string] => typeof e[1] === 'string'),
    );
  }
  const w = o['warnings'];
  if (Array.isArray(w)) {
    const warnings = w.filter((x): x is string => typeof x === 'string' && x !== '');
    if (warnings.length > 0) msg.warnings = warnings;
  }
  return msg;
}
