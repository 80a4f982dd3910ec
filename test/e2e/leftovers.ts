// What a clone may leave behind, shared by the DataVolume clone e2e (clone.test.ts) and the clone populator's
// (populators.test.ts): its temporaries by name, each with its state, so that a failure says what is stuck and why.
import {
  Resources,
  type KubeClient,
  type KubeObject,
  type PersistentVolumeClaim,
  type Resource,
} from '../../src/kube/index.ts';

const snapshotResource = (kind: string, plural: string, namespaced: boolean): Resource => ({
  group: 'snapshot.storage.k8s.io',
  version: 'v1',
  kind,
  plural,
  namespaced,
});
const OwnerRef = 'cdi.kubevirt.io/storage.ownerRef';
export const VolumeSnapshot = snapshotResource('VolumeSnapshot', 'volumesnapshots', true);
export const VolumeSnapshotContent = snapshotResource(
  'VolumeSnapshotContent',
  'volumesnapshotcontents',
  false,
);

export interface CloneOf {
  /** The uid in the temporaries' names: the DataVolume's, or the populator target PVC's. */
  uid: string;
  /** Where the temporaries are made (a DataVolume's source namespace; a populator target's own). */
  srcNs: string;
  targetNs: string;
  /** The target PVC's name (a DataVolume's upload pod is cdi-upload-<it>). */
  targetName: string;
  /**
   * Also the storage behind them: VolumeSnapshotContents bound to tmp-snapshot-<uid>, and PVs whose claim is the
   * target or tmp-pvc-<uid> (the target itself being gone).
   */
  storage?: boolean;
}

/** What a clone left behind: nothing, once it is done or deleted. */
export async function cloneLeftovers(client: KubeClient, c: CloneOf): Promise<string[]> {
  const { uid, srcNs } = c;
  const out: string[] = [];
  const pods = await client.list<KubeObject>(Resources.Pod, { namespace: srcNs });
  // a host-assisted copy's source pod is named by the target PVC's uid; it names its target in storage.ownerRef
  const target = `${c.targetNs}/${c.targetName}`;
  for (const p of pods.items)
    if (p.metadata?.name?.startsWith(uid) || p.metadata?.annotations?.[OwnerRef] === target)
      out.push(`pod ${srcNs}/${p.metadata?.name}`);
  const tgtPods = await client.list<KubeObject>(Resources.Pod, { namespace: c.targetNs });
  for (const p of tgtPods.items)
    if (p.metadata?.name === `cdi-upload-${c.targetName}`) out.push(`pod ${p.metadata.name}`);
  // the claims a clone makes beside its source: a smart clone's across namespaces, and the one a snapshot is restored
  // into for a host-assisted copy
  const restored = `${uid}-host-assisted-source-pvc`;
  for (const name of [`tmp-pvc-${uid}`, restored]) {
    const pvc = await client.getOrUndefined<PersistentVolumeClaim>(
      Resources.PersistentVolumeClaim,
      name,
      srcNs,
    );
    if (pvc) out.push(`pvc ${srcNs}/${name} (${stateOf(pvc, pvc.status?.phase ?? 'no phase')})`);
  }
  const snap = await client.getOrUndefined<KubeObject & { status?: { readyToUse?: boolean } }>(
    VolumeSnapshot,
    `tmp-snapshot-${uid}`,
    srcNs,
  );
  if (snap)
    out.push(
      `snapshot ${srcNs}/tmp-snapshot-${uid} (${stateOf(snap, `readyToUse ${String(snap.status?.readyToUse)}`)})`,
    );
  // volumes: the restored claim's always; with storage, the target's and tmp-pvc's too
  const claims = new Set([
    `${srcNs}/${restored}`,
    ...(c.storage ? [`${c.targetNs}/${c.targetName}`, `${srcNs}/tmp-pvc-${uid}`] : []),
  ]);
  out.push(...(await volumesOf(client, claims)));
  if (c.storage) out.push(...(await contentLeftovers(client, c)));
  return out;
}

async function contentLeftovers(client: KubeClient, c: CloneOf): Promise<string[]> {
  const out: string[] = [];
  type Content = KubeObject & {
    spec?: { volumeSnapshotRef?: { name?: string; namespace?: string } };
    status?: { readyToUse?: boolean };
  };
  for (const vsc of (await client.list<Content>(VolumeSnapshotContent)).items) {
    const ref = vsc.spec?.volumeSnapshotRef;
    if (ref?.namespace === c.srcNs && ref.name === `tmp-snapshot-${c.uid}`)
      out.push(
        `volumesnapshotcontent ${vsc.metadata?.name} (${stateOf(vsc, `readyToUse ${String(vsc.status?.readyToUse)}`)})`,
      );
  }
  return out;
}

/** The PVs whose claimRef is one of `claims` (<namespace>/<name>). */
async function volumesOf(client: KubeClient, claims: Set<string>): Promise<string[]> {
  type Pv = KubeObject & {
    spec?: { claimRef?: { name?: string; namespace?: string } };
    status?: { phase?: string };
  };
  const out: string[] = [];
  for (const pv of (await client.list<Pv>(Resources.PersistentVolume)).items) {
    const ref = pv.spec?.claimRef;
    if (ref && claims.has(`${ref.namespace}/${ref.name}`))
      out.push(
        `pv ${pv.metadata?.name} of ${ref.namespace}/${ref.name} (${stateOf(pv, pv.status?.phase ?? 'no phase')})`,
      );
  }
  return out;
}

/** What a leftover looks like, for the failure message: its state, whether it is being deleted, its finalizers. */
export function stateOf(o: KubeObject, state: string): string {
  const m = o.metadata;
  return [
    state,
    ...(m?.deletionTimestamp ? [`deleting since ${m.deletionTimestamp}`] : []),
    `finalizers [${(m?.finalizers ?? []).join(' ')}]`,
  ].join('; ');
}
