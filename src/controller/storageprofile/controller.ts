// The StorageProfile controller: one profile per StorageClass, same name, with the claim property sets, clone
// strategy, snapshot class and DataImportCron source format the other controllers use (upstream
// pkg/controller/storageprofile-controller.go). Settings that cannot be used (a spec or StorageClass annotation
// with a bad value, a snapshot class that does not exist) set the Valid condition to False with a message that
// says what to fix, and a Warning event; the rest of the profile is still computed, and an unusable field keeps
// what it had.
import { isDeepStrictEqual } from 'node:util';
import { Compile } from 'typebox/compile';
import Type from 'typebox';
import {
  ClaimPropertySet as ClaimPropertySetSchema,
  VolumeSnapshotClassResource,
} from '../../api/storageprofile.ts';
import { Ann as ApiAnn, ConditionType } from '../../api/constants.ts';
import { setCondition } from '../../kube/index.ts';
import { GroupVersion, ManagedLabels } from '../shared/constants.ts';
import { isAlreadyExists, listOrNone, Res, type Kube } from '../shared/client.ts';
import type { Recorder } from '../shared/events.ts';
import type { Logger, Result } from '../shared/runtime.ts';
import type { ClaimPropertySet, StorageClass, StorageProfile, VolumeSnapshotClass } from '../shared/types.ts';
import { writeStatus } from '../shared/status.ts';
import type { ControllerMetrics } from '../../monitoring/metrics.ts';
import { storageProfileInfo } from './metrics.ts';
import {
  NoProvisioner,
  advisedCloneStrategy,
  advisedSourceFormat,
  capabilitiesFromVolumes,
  fitsDataImportCron,
  minimumSupportedPvcSize,
  needsReadWriteOnceForDataImportCron,
  recognize,
  tableClaimPropertySets,
  type CloneStrategy,
  type VolumeModes,
} from './capabilities.ts';

export interface ProfileDeps {
  kube: Kube;
  log: Logger;
  recorder?: Recorder;
  now?: () => Date;
  /** kubevirt_cdi_storageprofile_info: set from every profile as reconciled, dropped with its class */
  gauges?: Pick<ControllerMetrics, 'setStorageProfileInfo' | 'deleteStorageProfileInfo'>;
}

type ProfileStatus = NonNullable<StorageProfile['status']>;

/** What a profile's computation reads besides the class and the profile. */
export interface ProfileWorld {
  snapshotClasses: readonly VolumeSnapshotClass[];
  /** PersistentVolumes; only read for classes without a provisioner. */
  volumes: readonly VolumeModes[];
}

/** A setting that cannot be used: reason (CamelCase) and a message that names the field and the fix. */
export interface Problem {
  reason: string;
  message: string;
}

export interface ProfileResult {
  status: ProfileStatus;
  /** Annotation changes on the profile itself (null removes one). */
  annotations: Record<string, string | null>;
  problems: Problem[];
}

export const CloneStrategies: readonly CloneStrategy[] = ['copy', 'snapshot', 'csi-clone'];
const SourceFormats = ['pvc', 'snapshot'] as const;
const AccessModes = ['ReadWriteOnce', 'ReadOnlyMany', 'ReadWriteMany', 'ReadWriteOncePod'] as const;
type SourceFormat = (typeof SourceFormats)[number];

/** The condition that says whether the profile's settings (and its class's CDI annotations) are usable. */
const ValidCondition = ConditionType.Valid;

const recognizedMessage: Record<ReturnType<typeof recognize>, string> = {
  RecognizedProvisioner: 'Provisioner is recognized',
  UnrecognizedProvisioner: 'Provisioner is not recognized',
  UnrecognizedStorageClassParameters: 'Storage class parameters are not recognized',
};

const claimPropertySetsCheck = Compile(Type.Array(ClaimPropertySetSchema, { minItems: 1, maxItems: 8 }));

const oneOf = <T extends string>(values: readonly T[], v: string): v is T =>
  (values as readonly string[]).includes(v);

/** A set value if it is one of `values`; otherwise a problem naming `where`, and undefined (not set: undefined). */
function allowed<T extends string>(
  values: readonly T[],
  value: string | undefined,
  where: string,
  reason: string,
  problems: Problem[],
): T | undefined {
  if (value === undefined || oneOf(values, value)) return value;
  problems.push({
    reason,
    message: `${where} "${value}" is not one of ${values.join(', ')}; fix or remove it`,
  });
  return undefined;
}

/**
 * upstream GetVolumeSnapshotClass: the class named by spec.snapshotClass if it is for this provisioner, else the
 * provisioner's default-annotated class, else the first by name.
 */
function chooseSnapshotClass(
  sc: StorageClass,
  wanted: string | undefined,
  w: ProfileWorld,
  problems: Problem[],
): string {
  if (wanted) {
    const vsc = w.snapshotClasses.find((c) => c.metadata.name === wanted);
    if (!vsc) {
      problems.push({
        reason: 'SnapshotClassNotFound',
        message: `spec.snapshotClass: VolumeSnapshotClass "${wanted}" does not exist; create it or change spec.snapshotClass`,
      });
    } else if (vsc.driver !== sc.provisioner) {
      problems.push({
        reason: 'InvalidSnapshotClass',
        message: `spec.snapshotClass: VolumeSnapshotClass "${wanted}" is for driver "${vsc.driver}", not for this class's provisioner "${sc.provisioner}"`,
      });
    } else return wanted;
    return '';
  }
  const mine = w.snapshotClasses.filter((c) => c.driver === sc.provisioner);
  const byDefault = mine.find((c) => c.metadata.annotations?.[ApiAnn.DefaultSnapshotClass] === 'true');
  return byDefault?.metadata.name ?? mine.map((c) => c.metadata.name ?? '').sort()[0] ?? '';
}

/**
 * upstream reconcileCloneStrategy: spec.cloneStrategy, else the class's cdi.kubevirt.io/clone-strategy
 * annotation, else the table's advice, else snapshot when a VolumeSnapshotClass exists for the provisioner and
 * copy when none does (snapshot advice without a snapshot class falls back to copy as well).
 */
function chooseCloneStrategy(
  sc: StorageClass,
  spec: StorageProfile['spec'],
  snapClass: string,
  problems: Problem[],
): CloneStrategy {
  const wanted = allowed(
    CloneStrategies,
    spec?.cloneStrategy,
    'spec.cloneStrategy',
    'InvalidCloneStrategy',
    problems,
  );
  if (wanted) return wanted;
  const ann = allowed(
    CloneStrategies,
    sc.metadata.annotations?.[ApiAnn.CloneStrategy],
    `StorageClass ${sc.metadata.name} annotation ${ApiAnn.CloneStrategy}`,
    'InvalidStorageClassAnnotation',
    problems,
  );
  if (ann) return ann;
  const strategy = advisedCloneStrategy(sc) ?? (snapClass ? 'snapshot' : 'copy');
  return strategy === 'snapshot' && !snapClass ? 'copy' : strategy;
}

/** upstream reconcileDataImportCronSourceFormat */
function chooseSourceFormat(
  sc: StorageClass,
  spec: StorageProfile['spec'],
  snapClass: string,
  problems: Problem[],
): SourceFormat {
  const wanted = allowed(
    SourceFormats,
    spec?.dataImportCronSourceFormat,
    'spec.dataImportCronSourceFormat',
    'InvalidDataImportCronSourceFormat',
    problems,
  );
  if (wanted) return wanted;
  const format = advisedSourceFormat(sc) ?? 'pvc';
  return format === 'snapshot' && !snapClass ? 'pvc' : format;
}

/**
 * The claim property sets: the profile's spec, else the class's cdi.kubevirt.io/claim-property-sets annotation
 * (a JSON list in the spec's shape; for provisioners the table does not know), else the table (for a class
 * without provisioner: what its PersistentVolumes offer). Undefined keeps the current status value.
 */
function chooseClaimPropertySets(
  sc: StorageClass,
  spec: StorageProfile['spec'],
  w: ProfileWorld,
  problems: Problem[],
): ClaimPropertySet[] | undefined {
  const sets = spec?.claimPropertySets;
  if (sets?.length) {
    const bad = sets.findIndex((s) => !s.volumeMode || !s.accessModes?.length);
    if (bad < 0) return structuredClone(sets);
    problems.push({
      reason: 'InvalidClaimPropertySets',
      message: `spec.claimPropertySets[${bad}]: each ClaimPropertySet must provide both volumeMode and accessModes`,
    });
    return undefined;
  }
  const ann = sc.metadata.annotations?.[ApiAnn.ClaimPropertySets];
  if (ann !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(ann);
    } catch {
      parsed = undefined;
    }
    // the schema's CEL rule on access modes is the API server's to check, so it is repeated here
    if (
      claimPropertySetsCheck.Check(parsed) &&
      parsed.every((c) => c.accessModes.every((m) => oneOf(AccessModes, m)))
    )
      return parsed;
    problems.push({
      reason: 'InvalidStorageClassAnnotation',
      message: `StorageClass ${sc.metadata.name} annotation ${ApiAnn.ClaimPropertySets} is not a JSON list of 1-8 {"accessModes": [...], "volumeMode": "Block"|"Filesystem"}; fix or remove it`,
    });
  }
  if (sc.provisioner === NoProvisioner) return capabilitiesFromVolumes(sc, w.volumes);
  return tableClaimPropertySets(sc) ?? [];
}

/** upstream reconcileMinimumSupportedPVCSize, reconcileUseReadWriteOnceForDataImportCron, …ForDataImportCron */
function profileAnnotations(
  sc: StorageClass,
  profile: StorageProfile,
  w: ProfileWorld,
): Record<string, string | null> {
  const have = profile.metadata.annotations ?? {};
  const out: Record<string, string | null> = {};
  const min = minimumSupportedPvcSize(sc);
  if (min && have[ApiAnn.MinimumSupportedPVCSize] === undefined) out[ApiAnn.MinimumSupportedPVCSize] = min;
  if (needsReadWriteOnceForDataImportCron(sc) && have[ApiAnn.UseReadWriteOnceForDataImportCron] === undefined)
    out[ApiAnn.UseReadWriteOnceForDataImportCron] = 'true';
  const fit = w.snapshotClasses.filter((c) => fitsDataImportCron(sc, c));
  const cronClass =
    fit.find((c) => c.metadata.annotations?.[ApiAnn.DefaultSnapshotClass] === 'true')?.metadata.name ??
    fit.map((c) => c.metadata.name ?? '').sort()[0];
  if (cronClass) {
    if (have[ApiAnn.SnapshotClassForDataImportCron] !== cronClass)
      out[ApiAnn.SnapshotClassForDataImportCron] = cronClass;
  } else if (have[ApiAnn.SnapshotClassForDataImportCron] !== undefined)
    out[ApiAnn.SnapshotClassForDataImportCron] = null;
  return out;
}

/** The profile's status and annotation changes for its class; pure (time comes in as `now`). */
export function computeProfile(
  sc: StorageClass,
  profile: StorageProfile,
  w: ProfileWorld,
  now: Date,
): ProfileResult {
  const spec = profile.spec ?? {};
  const problems: Problem[] = [];
  const status: ProfileStatus = structuredClone(profile.status ?? {});
  status.storageClass = sc.metadata.name ?? '';
  status.provisioner = sc.provisioner;
  const snapClass = chooseSnapshotClass(sc, spec.snapshotClass, w, problems);
  if (snapClass) status.snapshotClass = snapClass;
  else delete status.snapshotClass;
  status.cloneStrategy = chooseCloneStrategy(sc, spec, snapClass, problems);
  status.dataImportCronSourceFormat = chooseSourceFormat(sc, spec, snapClass, problems);
  const sets = chooseClaimPropertySets(sc, spec, w, problems);
  if (sets) status.claimPropertySets = sets;
  else status.claimPropertySets ??= [];

  const reason = recognize(sc);
  let conditions = setCondition(
    status.conditions,
    {
      type: 'Recognized',
      status: reason === 'RecognizedProvisioner' ? 'True' : 'False',
      reason,
      message: recognizedMessage[reason],
    },
    now,
    { heartbeat: true },
  );
  conditions = setCondition(
    conditions,
    problems.length
      ? {
          type: ValidCondition,
          status: 'False',
          reason: problems[0]?.reason ?? '',
          message: problems.map((p) => p.message).join('; '),
        }
      : {
          type: ValidCondition,
          status: 'True',
          reason: 'Valid',
          message: 'The StorageProfile settings are valid',
        },
    now,
    { heartbeat: true },
  );
  status.conditions = conditions;
  return { status, annotations: profileAnnotations(sc, profile, w), problems };
}

export async function reconcileStorageProfile(d: ProfileDeps, key: string): Promise<Result | void> {
  const sc = await d.kube.get<StorageClass>(Res.storageClass, key);
  if (!sc || sc.metadata.deletionTimestamp) {
    d.gauges?.deleteStorageProfileInfo(key);
    // upstream deletes the profile of a deleted class
    if (await d.kube.delete(Res.storageProfile, key))
      d.log.info('deleted StorageProfile of a deleted StorageClass', { name: key });
    return;
  }
  let profile = await d.kube.get<StorageProfile>(Res.storageProfile, key);
  if (!profile) {
    try {
      profile = await d.kube.create<StorageProfile>(Res.storageProfile, {
        apiVersion: GroupVersion,
        kind: 'StorageProfile',
        metadata: { name: key, labels: { ...ManagedLabels } },
        spec: {},
      });
    } catch (e) {
      if (!isAlreadyExists(e)) throw e;
      return { requeueAfterMs: 0 };
    }
  }
  const world: ProfileWorld = {
    snapshotClasses: await listOrNone<VolumeSnapshotClass>(d.kube, VolumeSnapshotClassResource),
    volumes: sc.provisioner === NoProvisioner ? await listOrNone<VolumeModes>(d.kube, Res.pv) : [],
  };
  const { status, annotations, problems } = computeProfile(sc, profile, world, d.now?.() ?? new Date());
  if (Object.keys(annotations).length) {
    profile = await d.kube.mergePatch<StorageProfile>(Res.storageProfile, key, undefined, {
      metadata: { annotations },
    });
  }
  if (d.gauges) await setProfileGauge(d, sc, { ...profile, status }, world);
  const before = profile.status?.conditions?.find((c) => c.type === ValidCondition);
  if (isDeepStrictEqual(status, profile.status ?? {})) return;
  const written = await writeStatus(d.kube, Res.storageProfile, { ...profile, status });
  const after = status.conditions?.find((c) => c.type === ValidCondition);
  // one event per new problem (not per reconcile): when the message changes
  if (problems.length && after && after.message !== before?.message) {
    d.log.warn('StorageProfile settings cannot be used', { name: key, problems: after.message });
    await d.recorder?.record(
      { apiVersion: GroupVersion, kind: 'StorageProfile', ...written },
      'Warning',
      after.reason ?? 'InvalidSpec',
      after.message ?? '',
    );
  }
}

/** upstream computeMetrics, from the profile as it is about to be (or already was) written. */
async function setProfileGauge(
  d: ProfileDeps,
  sc: StorageClass,
  profile: StorageProfile,
  world: ProfileWorld,
): Promise<void> {
  const provisioner = profile.status?.provisioner;
  const driver =
    profile.status?.cloneStrategy === 'csi-clone' && provisioner
      ? await d.kube.get(Res.csiDriver, provisioner)
      : undefined;
  const info = storageProfileInfo(profile, sc, {
    snapshotClasses: world.snapshotClasses,
    csiDriverExists: () => driver !== undefined,
    // OpenShift's Infrastructure topology does not exist elsewhere: never single-node
    singleNode: false,
  });
  if (info) d.gauges?.setStorageProfileInfo(info);
}

/**
 * Maps a PersistentVolume to the StorageProfile it matters to (for the manager's watch): only a class without a
 * provisioner takes its capabilities from its volumes (upstream watches PVs for those classes only).
 */
export function profileKeyOfVolume(classes: {
  getByName(name: string): object | undefined;
}): (pv: object) => string | undefined {
  return (pv) => {
    const name = (pv as VolumeModes).spec?.storageClassName;
    if (!name) return undefined;
    const sc = classes.getByName(name) as Partial<StorageClass> | undefined;
    return sc?.provisioner === NoProvisioner ? name : undefined;
  };
}
