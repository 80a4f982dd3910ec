// Renders the target PVC of a DataVolume (upstream pkg/controller/datavolume/util.go renderPvcSpec and
// controller-base.go newPersistentVolumeClaim): the `pvc` API as given, the `storage` API completed from the
// StorageProfile and the default storage class, with filesystem overhead added to the size.
import type { PersistentVolumeClaim as Pvc } from '../../kube/index.ts';
import type { V1PersistentVolumeClaimSpec } from '@kubernetes/client-node';
import { Ann, ContentType, GroupVersion, Label, Message, Source } from '../shared/constants.ts';
import { MiB, parseOverhead, parseQuantity, requiredSpace, stringQuantities } from '../shared/quantity.ts';
import { filesystemOverheadFor, storageClassByName } from '../shared/storage.ts';
import type { CDIConfig, DataVolume, StorageClass, StorageProfile } from '../shared/types.ts';
import { initialCheckpointAnnotations } from '../shared/checkpoints.ts';

/** What rendering reads from the cluster, passed in so rendering stays a pure function. */
export interface RenderWorld {
  storageClasses: StorageClass[];
  storageProfile(name: string): StorageProfile | undefined;
  config: CDIConfig | undefined;
}

/** A DataVolume that cannot be rendered: `reason` is the event reason, `message` says what to change. */
export class ClaimNotValidError extends Error {
  readonly reason = 'ErrClaimNotValid';
  /** No storage class at all: retrying will not help until one is created (a StorageClass event requeues). */
  readonly storageClassNotFound: boolean;
  constructor(message: string, storageClassNotFound = false) {
    super(message);
    this.storageClassNotFound = storageClassNotFound;
  }
}

export function contentTypeOf(dv: DataVolume): string {
  return dv.spec.contentType === ContentType.archive ? ContentType.archive : ContentType.kubevirt;
}

export function renderPvcSpec(
  dv: DataVolume,
  existing: Pvc | undefined,
  w: RenderWorld,
): V1PersistentVolumeClaimSpec {
  if (dv.spec.pvc) {
    const { resources, ...rest } = structuredClone(dv.spec.pvc);
    return { ...rest, ...(resources ? { resources: stringQuantities(resources) } : {}) };
  }
  const storage = dv.spec.storage;
  if (!storage) throw new ClaimNotValidError('DataVolume needs one of spec.pvc or spec.storage');
  let spec: V1PersistentVolumeClaimSpec;
  if (existing?.spec) spec = structuredClone(existing.spec);
  else {
    const s = structuredClone(storage);
    spec = {
      ...(s.accessModes ? { accessModes: s.accessModes } : {}),
      ...(s.selector ? { selector: s.selector } : {}),
      ...(s.resources ? { resources: stringQuantities(s.resources) } : {}),
      ...(s.volumeName ? { volumeName: s.volumeName } : {}),
      ...(s.storageClassName !== undefined ? { storageClassName: s.storageClassName } : {}),
      ...(s.volumeMode ? { volumeMode: s.volumeMode } : {}),
      ...(s.dataSource ? { dataSource: s.dataSource } : {}),
      ...(s.dataSourceRef ? { dataSourceRef: s.dataSourceRef } : {}),
    };
    renderModesAndClass(dv, spec, w);
  }
  const isClone = Boolean(dv.spec.source?.pvc || dv.spec.source?.snapshot);
  renderSize(spec, isClone, w);
  return spec;
}

function renderModesAndClass(dv: DataVolume, spec: V1PersistentVolumeClaimSpec, w: RenderWorld): void {
  const contentType = contentTypeOf(dv);
  if (spec.volumeMode === 'FromStorageProfile') delete spec.volumeMode;
  if (contentType === ContentType.archive) {
    if (spec.volumeMode === 'Block')
      throw new ClaimNotValidError('ContentType Archive cannot have block volumeMode');
    spec.volumeMode = 'Filesystem';
  }
  const sc = storageClassByName(w.storageClasses, spec.storageClassName, contentType);
  if (!sc) {
    if (spec.storageClassName !== undefined) {
      // A named class that does not exist (yet): keep the name, Kubernetes keeps the claim Pending until it exists.
      if (!spec.accessModes?.length) {
        throw new ClaimNotValidError(
          `storage class ${spec.storageClassName} not found: create it or set spec.storage.accessModes`,
          true,
        );
      }
      return;
    }
    if (!spec.accessModes?.length) throw new ClaimNotValidError(Message.storageClassNotFound, true);
    return;
  }
  const scName = sc.metadata.name ?? '';
  spec.storageClassName = scName;
  const profile = w.storageProfile(scName);
  const sets = profile?.status?.claimPropertySets ?? [];
  if (!spec.volumeMode && !spec.accessModes?.length) {
    const first = sets[0];
    if (!profile)
      throw new ClaimNotValidError(
        `Spec is missing accessMode and volumeMode, cannot get access mode from StorageProfile ${scName}`,
      );
    if (!first?.accessModes?.length) {
      throw new ClaimNotValidError(
        `no accessMode specified in StorageProfile ${scName}: set spec.storage.accessModes or the profile's claimPropertySets`,
      );
    }
    spec.accessModes = [...first.accessModes];
    if (first.volumeMode) spec.volumeMode = first.volumeMode;
  } else if (!spec.accessModes?.length) {
    const match = sets.find((s) => s.volumeMode === spec.volumeMode && s.accessModes?.length);
    if (!match?.accessModes) {
      throw new ClaimNotValidError(
        `Spec is missing accessMode and cannot get access mode from StorageProfile ${scName}`,
      );
    }
    spec.accessModes = [...match.accessModes];
  } else if (!spec.volumeMode) {
    const match = sets.find((s) => s.accessModes?.some((m) => spec.accessModes?.includes(m)));
    if (match?.volumeMode) spec.volumeMode = match.volumeMode;
  }
}

function renderSize(spec: V1PersistentVolumeClaimSpec, isClone: boolean, w: RenderWorld): void {
  const req = spec.resources?.requests?.['storage'];
  if (req === undefined) {
    if (!isClone) throw new ClaimNotValidError('PVC Spec is not valid - missing storage size');
    return;
  }
  let size: bigint;
  try {
    size = parseQuantity(String(req));
  } catch (e) {
    throw new ClaimNotValidError(`PVC Spec is not valid - ${(e as Error).message}`);
  }
  if (size < MiB)
    throw new ClaimNotValidError('PVC Spec is not valid - storage size should be at least 1MiB');
  if (spec.volumeMode !== 'Block') {
    const overhead = parseOverhead(
      filesystemOverheadFor(w.config, w.storageClasses, spec.storageClassName, spec.volumeMode),
    );
    size = requiredSpace(overhead, size);
  }
  if (spec.storageClassName) {
    const min = w.storageProfile(spec.storageClassName)?.metadata.annotations?.[Ann.minimumSupportedPvcSize];
    if (min) {
      try {
        const m = parseQuantity(min);
        if (size < m) size = m;
      } catch {
        // an invalid profile annotation is ignored, as upstream does
      }
    }
  }
  spec.resources = {
    ...(spec.resources ?? {}),
    requests: { ...(spec.resources?.requests ?? {}), storage: size.toString() },
  };
}

/** The import annotations for the DV's source (upstream UpdateHTTPAnnotations and friends). */
export function sourceAnnotations(dv: DataVolume): Record<string, string> {
  return importSourceAnnotations(dv.spec.source ?? {});
}

/** The import annotations of a source (a DataVolume's, or a VolumeImportSource's, which has the same shape). */
export function importSourceAnnotations(
  src: NonNullable<DataVolume['spec']['source']>,
): Record<string, string> {
  const a: Record<string, string> = {};
  if (src.http) {
    const h = src.http;
    a[Ann.endpoint] = h.url;
    a[Ann.source] = Source.http;
    if (h.secretRef) a[Ann.secretName] = h.secretRef;
    if (h.certConfigMap) a[Ann.certConfigMap] = h.certConfigMap;
    if (h.checksum) a[Ann.checksum] = h.checksum;
    if (h.insecureSkipVerify) a[Ann.insecureSkipVerify] = 'true';
    (h.extraHeaders ?? []).forEach((v, i) => (a[`${Ann.extraHeaders}.${i}`] = v));
    (h.secretExtraHeaders ?? []).forEach((v, i) => (a[`${Ann.secretExtraHeaders}.${i}`] = v));
  } else if (src.s3) {
    a[Ann.endpoint] = src.s3.url;
    a[Ann.source] = Source.s3;
    if (src.s3.secretRef) a[Ann.secretName] = src.s3.secretRef;
    if (src.s3.certConfigMap) a[Ann.certConfigMap] = src.s3.certConfigMap;
    // s3, gcs and registry checksums are ours (upstream: http only); the importer verifies them all alike
    if (src.s3.checksum) a[Ann.checksum] = src.s3.checksum;
  } else if (src.gcs) {
    a[Ann.endpoint] = src.gcs.url;
    a[Ann.source] = Source.gcs;
    if (src.gcs.secretRef) a[Ann.secretName] = src.gcs.secretRef;
    if (src.gcs.checksum) a[Ann.checksum] = src.gcs.checksum;
  } else if (src.registry) {
    const r = src.registry;
    a[Ann.source] = Source.registry;
    const pullMethod = r.pullMethod ?? 'pod';
    a[Ann.registryImportMethod] = pullMethod;
    if (r.url) a[Ann.endpoint] = r.url;
    if (r.imageStream) {
      a[Ann.endpoint] = r.imageStream;
      a[Ann.registryImageStream] = 'true';
    }
    if (r.secretRef) a[Ann.secretName] = r.secretRef;
    if (r.certConfigMap) a[Ann.certConfigMap] = r.certConfigMap;
    if (r.platform?.architecture) a[Ann.registryImageArchitecture] = r.platform.architecture;
    if (r.checksum) a[Ann.checksum] = r.checksum;
  } else if (src.imageio) {
    const i = src.imageio;
    a[Ann.endpoint] = i.url;
    a[Ann.source] = Source.imageio;
    a[Ann.diskId] = i.diskId;
    if (i.secretRef) a[Ann.secretName] = i.secretRef;
    if (i.certConfigMap) a[Ann.certConfigMap] = i.certConfigMap;
    if (i.insecureSkipVerify) a[Ann.insecureSkipVerify] = 'true';
  } else if (src.vddk) {
    const v = src.vddk;
    a[Ann.source] = Source.vddk;
    if (v.url) a[Ann.endpoint] = v.url;
    if (v.uuid) a[Ann.uuid] = v.uuid;
    if (v.backingFile) a[Ann.backingFile] = v.backingFile;
    if (v.thumbprint) a[Ann.thumbprint] = v.thumbprint;
    if (v.secretRef) a[Ann.secretName] = v.secretRef;
    if (v.initImageURL) a[Ann.vddkInitImageURL] = v.initImageURL;
    if (v.extraArgs) a[Ann.vddkExtraArgs] = v.extraArgs;
  } else if (src.blank) {
    a[Ann.source] = Source.none;
  } else if (src.upload) {
    // upstream UploadReconciler.updateAnnotations: the upload controller takes the claim from here
    a[Ann.uploadRequest] = '';
  } else {
    throw new ClaimNotValidError(
      'no source set for import datavolume: set spec.source.http (or s3, gcs, registry, imageio, vddk, blank)',
    );
  }
  return a;
}

/** The target PVC: DV labels and annotations, the import annotations, and a controller owner reference to the DV. */
export function newPvcForDataVolume(
  dv: DataVolume,
  spec: V1PersistentVolumeClaimSpec,
  preallocationDefault: boolean,
  /** The source's annotations; by default the import annotations (a clone passes its own). */
  source?: Record<string, string>,
): Pvc {
  const labels: Record<string, string> = { [Label.app]: Label.appValue };
  if (spec.volumeMode !== 'Block') labels[Label.fillingUp] = Label.fillingUpValue;
  Object.assign(labels, dv.metadata.labels ?? {});
  const annotations: Record<string, string> = { ...(dv.metadata.annotations ?? {}) };
  annotations[Ann.podRestarts] = '0';
  annotations[Ann.contentType] = contentTypeOf(dv);
  if (dv.spec.priorityClassName) annotations[Ann.priorityClassName] = dv.spec.priorityClassName;
  if (dv.spec.serviceAccountName) annotations[Ann.podServiceAccount] = dv.spec.serviceAccountName;
  annotations[Ann.preallocationRequested] = String(dv.spec.preallocation ?? preallocationDefault);
  annotations[Ann.createdForDataVolume] = dv.metadata.uid ?? '';
  Object.assign(annotations, initialCheckpointAnnotations(dv), source ?? sourceAnnotations(dv));
  // kubectl's bookkeeping belongs to the DV, not to the claim we create; clone tokens are bound to the DV
  delete annotations['kubectl.kubernetes.io/last-applied-configuration'];
  delete annotations[Ann.cloneToken];
  delete annotations[Ann.extendedCloneToken];
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: {
      name: dv.metadata.name,
      namespace: dv.metadata.namespace,
      labels,
      annotations,
      ownerReferences: [dvOwnerRef(dv)],
    },
    spec,
  };
}

/** The controller owner reference of what a DataVolume makes (its PVC, a smart clone's snapshot). */
export function dvOwnerRef(dv: DataVolume): {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller: boolean;
  blockOwnerDeletion: boolean;
} {
  return {
    apiVersion: GroupVersion,
    kind: 'DataVolume',
    name: dv.metadata.name ?? '',
    uid: dv.metadata.uid ?? '',
    controller: true,
    blockOwnerDeletion: true,
  };
}
