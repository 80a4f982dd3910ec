// upstream CopyEvents (pkg/controller/common/util.go): the events of a temporary claim (a populator's prime-<uid> or
// tmp-pvc-<uid>, a DataVolume clone's tmp-pvc-<uid> or <uid>-host-assisted-source-pvc) are re-emitted on the claim
// it fills, with `[<source name>] : ` before the message, so that `kubectl describe` of the target says why it waits
// (a ProvisioningFailed of the claim the user never made). A message the target already has, with or without the
// prefix, is not emitted again, nor a ClaimMisbound event (the source's own binding trouble, not the target's).
//
// Cost: the event cache holds only other components' events about PVCs, and the target's copies are our own, so this
// reads the API server: one list (the source's events), and a second (the target's) only when the source has an
// event not mirrored yet by this process. Callers run it only while the temporary claim exists and the target is not
// done, never on the reconciles of finished objects.
import type { KubeObject, PersistentVolumeClaim as Pvc } from '../../kube/index.ts';
import { Res, type Kube } from './client.ts';
import type { Recorder } from './events.ts';
import type { Logger } from './runtime.ts';

/** upstream EventReasonClaimMisbound (the PV controller's). */
export const ClaimMisbound = 'ClaimMisbound';

export interface SourceEvent {
  type?: string;
  reason?: string;
  message?: string;
  lastTimestamp?: string;
  eventTime?: string;
  firstTimestamp?: string;
}

export interface MirroredEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

export const mirrorPrefix = (sourceName: string): string => `[${sourceName}] : `;

const eventTime = (e: SourceEvent): number =>
  Date.parse(e.lastTimestamp ?? e.eventTime ?? e.firstTimestamp ?? '') || 0;

/**
 * The copy rule: the source's events (oldest first) the target does not have yet, each with the source's prefix.
 * `targetMessages` are the messages of the target's events.
 */
export function eventsToMirror(
  sourceName: string,
  sourceEvents: readonly SourceEvent[],
  targetMessages: Iterable<string>,
): MirroredEvent[] {
  const have = new Set(targetMessages);
  const prefix = mirrorPrefix(sourceName);
  const out: MirroredEvent[] = [];
  for (const e of [...sourceEvents].sort((x, y) => eventTime(x) - eventTime(y))) {
    const msg = e.message ?? '';
    if (!msg || have.has(msg) || have.has(prefix + msg) || e.reason === ClaimMisbound) continue;
    have.add(prefix + msg); // two source events of one message are one copy
    out.push({
      type: e.type === 'Warning' ? 'Warning' : 'Normal',
      reason: e.reason ?? '',
      message: prefix + msg,
    });
  }
  return out;
}

/** The newest event of the source that the rule copies (upstream's Bound condition reads its copy on the target). */
export function latestMirrored(sourceEvents: readonly SourceEvent[]): SourceEvent | undefined {
  return [...sourceEvents]
    .filter((e) => e.message && e.reason !== ClaimMisbound)
    .sort((x, y) => eventTime(y) - eventTime(x) || (y.message ?? '').length - (x.message ?? '').length)[0];
}

export interface CopyEventsDeps {
  kube: Kube;
  recorder: Recorder;
  log?: Logger;
}

/**
 * What this process has mirrored, by target uid and message: the recorder writes asynchronously, so the next
 * reconcile may not see a copy in the target's events yet; and it spares the second list. Bounded, oldest out.
 */
const mirrored = new Map<string, true>();
const MaxRemembered = 4096;
const remember = (k: string): void => {
  mirrored.delete(k);
  mirrored.set(k, true);
  while (mirrored.size > MaxRemembered) mirrored.delete(mirrored.keys().next().value!);
};

const selector = (o: KubeObject): string =>
  `involvedObject.name=${o.metadata?.name ?? ''},involvedObject.uid=${o.metadata?.uid ?? ''}`;

const listEvents = async (kube: Kube, o: KubeObject): Promise<SourceEvent[]> =>
  (
    await kube.list<SourceEvent>(Res.event, {
      namespace: o.metadata?.namespace ?? '',
      fieldSelector: selector(o),
      live: true,
    })
  ).items;

/**
 * Copies the new events of `source` onto `target` through the recorder (its spam filter applies). Best effort, as
 * upstream: a failed list is logged, never thrown. Returns the source's newest copied event, if it has one.
 */
export async function copyEvents(
  d: CopyEventsDeps,
  source: Pvc,
  target: Pvc,
): Promise<SourceEvent | undefined> {
  const targetUid = target.metadata?.uid ?? '';
  const sourceName = source.metadata?.name ?? '';
  try {
    const events = await listEvents(d.kube, source);
    const key = (m: MirroredEvent): string => `${targetUid}\u0000${m.message}`;
    const fresh = eventsToMirror(sourceName, events, []).filter((m) => !mirrored.has(key(m)));
    if (fresh.length === 0) return latestMirrored(events);
    const have = (await listEvents(d.kube, target)).map((e) => e.message ?? '');
    const involved: KubeObject = { ...target, apiVersion: 'v1', kind: 'PersistentVolumeClaim' };
    for (const m of eventsToMirror(sourceName, events, have)) {
      remember(key(m));
      await d.recorder.record(involved, m.type, m.reason, m.message);
    }
    for (const m of fresh) remember(key(m)); // those the target had already
    return latestMirrored(events);
  } catch (e) {
    d.log?.warn('could not copy the events of a claim to the claim it fills', {
      source: `${source.metadata?.namespace}/${sourceName}`,
      target: `${target.metadata?.namespace}/${target.metadata?.name}`,
      error: e instanceof Error ? e.message : String(e),
    });
    return undefined;
  }
}
