// The host-assisted clone of a PVC annotated `k8s.io/CloneRequest: <ns>/<name>` (upstream's clone-controller.go and the
// clone half of upload-controller.go; the annotation is put there by the DataVolume clone controller, or by a user on
// a bare PVC, seed 003's API). The target gets its upload server `cdi-upload-<pvc>` (the upload controller's pod,
// Service and Secret, without scratch); once that is ready, the source pod `<target-uid>-source-pod` in the source's
// namespace streams the source to it over mutual TLS with a client certificate made for this clone (its CN is the only
// one the server accepts), issued with the server's from one reading of the CAs (UploadCertSource.forClone). The upload
// pod's state is copied onto the target PVC (the status protocol the DataVolume reads); when it has taken the whole
// stream the PVC gets `k8s.io/CloneOf: "true"` and both pods go.
//
// Level-triggered: the PVC's annotations are the only memory, names are deterministic, AlreadyExists is success. The
// source pod lives in another namespace, where no owner reference reaches: the finalizer cdi.kubevirt.io/cloneSource
// on the target PVC makes its deletion wait until the source pod and its Secret are gone.
import {
  controllerOf,
  isControlledBy,
  type PersistentVolumeClaim as Pvc,
  type Pod as PodObj,
  type Secret,
} from '../../kube/index.ts';
import { isDeepStrictEqual } from 'node:util';
import { extendCloneToken, verifyCloneGrant, type CloneSource } from '../../token/clone.ts';
import { TokenError } from '../../token/token.ts';
import { isAlreadyExists, Res, type Kube } from '../shared/client.ts';
import {
  Ann,
  CDIConfigName,
  Finalizer,
  Label,
  ManagedLabels,
  Message,
  Pod,
  Reason,
} from '../shared/constants.ts';
import type { Recorder } from '../shared/events.ts';
import { isHostClonePvc } from '../shared/indexes.ts';
import { podsUsingClaim } from '../shared/claims.ts';
import { workerSecurityContext } from '../shared/pods.ts';
import { parseQuantity } from '../shared/quantity.ts';
import { serviceName } from '../../api/naming.ts';
import { uploadServerUrl } from '../../api/upload.ts';
import type { Logger, Result } from '../shared/runtime.ts';
import { splitKey } from '../shared/runtime.ts';
import type { CDIConfig, DataVolume } from '../shared/types.ts';
import type { CloneSourceCerts, UploadCertSource } from '../upload/certs.ts';
import {
  createUploadPod,
  ensureUploadService,
  removeUploadServer,
  replaceAtDeadline,
  uploadTermination,
} from '../upload/controller.ts';
import { uploadResourceName } from '../upload/pod.ts';
import { setAnnotationsFromPod } from '../import/termination.ts';
import type { TokenSource } from './tokens.ts';
import { Ann as ApiAnn, LabelValue } from '../../api/constants.ts';

export interface HostCloneDeps {
  kube: Kube;
  recorder: Recorder;
  log: Logger;
  tokens: TokenSource;
  /** The upload server's certificates and the source pod's (the upload controller's source of them). */
  certs: UploadCertSource;
  uploadServerImage: string;
  clonerImage: string;
  pullPolicy: string;
  verbose?: string;
  nodeSelector?: Record<string, string>;
  now?: () => Date;
}

/** Where the cloner finds the source (upstream's cdi-cloner). */
const SourceMount = '/var/run/cdi/clone/source';

const anns = (o: { metadata?: { annotations?: Record<string, string> } }): Record<string, string> =>
  o.metadata?.annotations ?? {};

/** `<ns>/<name>` of the annotation, or undefined when it is not one. */
export function parseCloneRequest(v: string | undefined): { namespace: string; name: string } | undefined {
  const m = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)\/([a-z0-9]([-a-z0-9.]*[a-z0-9])?)$/.exec(v ?? '');
  return m ? { namespace: m[1]!, name: m[3]! } : undefined;
}

export function sourcePodName(target: Pvc): string {
  return `${target.metadata?.uid ?? ''}-source-pod`;
}

/** The CN the target's server accepts and the source pod's certificate carries. */
export function cloneClientName(target: Pvc): string {
  return `${sourcePodName(target)}.${target.metadata?.namespace ?? ''}`;
}

const involved = (pvc: Pvc): Pvc => ({ ...pvc, apiVersion: 'v1', kind: 'PersistentVolumeClaim' });

export async function reconcileHostClone(d: HostCloneDeps, key: string): Promise<Result | void> {
  const { namespace, name } = splitKey(key);
  const pvc = await d.kube.get<Pvc>(Res.pvc, name, namespace);
  if (!pvc || !isHostClonePvc(pvc)) return;
  const a = anns(pvc);
  const done = a[Ann.cloneOf] === 'true';
  if (pvc.metadata?.deletionTimestamp || done) {
    await finish(d, pvc);
    return;
  }
  const source = parseCloneRequest(a[Ann.cloneRequest]);
  if (!source) {
    return say(
      d,
      pvc,
      Reason.CloneValidationFailed,
      `${Ann.cloneRequest} is "${a[Ann.cloneRequest]}": write it as <namespace>/<pvc name> of the source`,
    );
  }

  // who may clone: same namespace, or a token the webhook gave the creator (then a long-term one bound to this PVC)
  const src = await d.kube.get<Pvc>(Res.pvc, source.name, source.namespace);
  if (source.namespace !== namespace) {
    const granted = await checkGrant(d, pvc, grantedSource(source, src));
    if (!granted) return;
  }

  if (!src) {
    return say(
      d,
      pvc,
      Reason.CloneWithoutSource,
      `The source pvc ${source.name} doesn't exist (in namespace ${source.namespace}); the clone starts once it does`,
    );
  }
  const problem = incompatible(src, pvc);
  if (problem) return say(d, pvc, Reason.ErrIncompatiblePVC, problem);
  if (src.status?.phase !== 'Bound')
    return say(d, pvc, Reason.Pending, `The source pvc ${source.namespace}/${source.name} is not bound yet`);
  if (!(pvc.metadata?.finalizers ?? []).includes(Finalizer.cloneSource)) {
    await d.kube.mergePatch(Res.pvc, name, namespace, {
      metadata: {
        resourceVersion: pvc.metadata?.resourceVersion,
        finalizers: [...(pvc.metadata?.finalizers ?? []), Finalizer.cloneSource],
      },
    });
    return; // the change queues this PVC again
  }

  const podName = uploadResourceName(pvc);
  let upload = await d.kube.get<PodObj>(Res.pod, podName, namespace);
  if (upload && !isControlledBy(upload, pvc))
    throw new Error(`pod ${namespace}/${podName} exists and is not owned by PVC ${name}: delete it`);
  if (upload?.metadata?.deletionTimestamp) return; // its deletion queues the PVC; the successor waits for the name
  if (!upload) upload = await startUploadServer(d, pvc, source.namespace, podName);
  await ensureUploadService(uploadDeps(d), pvc, serviceName(podName));
  const termination = uploadTermination(upload);
  if (termination?.deadlinePassed) {
    // no stream came before its deadline (the source waited): a new server, and a new certificate for the source
    await replaceAtDeadline(d, upload);
    return;
  }

  const sourcePod = await d.kube.get<PodObj>(Res.pod, sourcePodName(pvc), source.namespace);
  const next = { ...a };
  next[Ann.uploadPod] = upload.metadata?.name ?? '';
  next[Ann.cloneSourcePod] = sourcePodName(pvc);
  next[Ann.podPhase] = upload.status?.phase ?? 'Pending';
  next[Ann.podReady] = String(isReady(upload));
  setAnnotationsFromPod(next, upload, termination);
  // the source side says why a stream failed; its message is more use than the server's "connection reset"
  const srcFailure = lastFailure(sourcePod);
  if (srcFailure && next[Ann.runningCondition] !== 'false' && upload.status?.phase !== 'Succeeded') {
    next[Ann.runningConditionMessage] = srcFailure;
    next[Ann.runningConditionReason] = Reason.CloneFailed;
  }
  const succeeded = upload.status?.phase === 'Succeeded';
  if (succeeded) {
    next[Ann.cloneOf] = 'true';
    next[Ann.runningCondition] = 'false';
    next[Ann.runningConditionMessage] = Message.cloneComplete;
    next[Ann.runningConditionReason] = 'Completed';
  }

  // a source being deleted is not started on: its pod would hold it Terminating and never mount it (the DataVolume
  // controller makes a snapshot's restored claim again once it is gone)
  if (!succeeded && isReady(upload) && !sourcePod && !src.metadata?.deletionTimestamp) {
    // someone else's pod using the source would see it change under the stream
    const users = await podsUsingClaim(
      d.kube,
      src,
      (p) => p.metadata?.labels?.[Label.component] === Label.cloneSourceValue,
    );
    if (users.length > 0) {
      for (const u of users)
        await d.recorder.record(
          involved(pvc),
          'Warning',
          Reason.CloneSourceInUse,
          `pod ${u.metadata?.namespace}/${u.metadata?.name} using PersistentVolumeClaim ${source.name}`,
        );
      next[Ann.runningConditionReason] = Reason.CloneSourceInUse;
      next[Ann.runningConditionMessage] =
        `the source ${source.namespace}/${source.name} is in use by pod ${users.map((u) => u.metadata?.name).join(', ')}: the clone waits`;
    } else {
      await createSourcePod(d, pvc, src, upload);
      await d.recorder.record(
        involved(pvc),
        'Normal',
        Reason.CloneScheduled,
        `Cloning from ${source.namespace}/${source.name} into ${namespace}/${name} scheduled`,
      );
    }
  }
  if (!isDeepStrictEqual(next, a)) {
    await d.kube.mergePatch(Res.pvc, name, namespace, {
      metadata: { resourceVersion: pvc.metadata?.resourceVersion, annotations: next },
    });
    if (next[Ann.podPhase] === 'Running' && a[Ann.podPhase] !== 'Running')
      await d.recorder.record(
        involved(pvc),
        'Normal',
        Reason.CloneInProgress,
        `Cloning from ${source.namespace}/${source.name} into ${namespace}/${name} in progress`,
      );
    if (srcFailure && srcFailure !== a[Ann.runningConditionMessage])
      await d.recorder.record(involved(pvc), 'Warning', Reason.CloneFailed, srcFailure);
    if (succeeded)
      await d.recorder.record(
        involved(pvc),
        'Normal',
        Reason.CloneSucceeded,
        `Successfully cloned from ${source.namespace}/${source.name} into ${namespace}/${name}`,
      );
  }
}

/**
 * What the grant must name: the source claim, or, for the claim a snapshot was restored into for this copy, the
 * snapshot (upstream getTokenResourceNamePvc and getSourceNamePvc: the token was given for the snapshot).
 */
function grantedSource(source: { namespace: string; name: string }, src: Pvc | undefined): CloneSource {
  const ref = src?.spec?.dataSourceRef ?? src?.spec?.dataSource;
  if (
    src?.metadata?.labels?.[Label.component] === LabelValue.CloneFromSnapshotFallbackPvc &&
    ref?.kind === 'VolumeSnapshot' &&
    ref.name
  )
    return { kind: 'snapshot', namespace: source.namespace, name: ref.name };
  return { kind: 'pvc', ...source };
}

function isReady(p: PodObj | undefined): boolean {
  return (p?.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
}

/** The source pod's last "Clone failed: …" (its termination message), if it failed. */
function lastFailure(p: PodObj | undefined): string | undefined {
  const s = p?.status?.containerStatuses?.[0];
  const t = s?.state?.terminated ?? s?.lastState?.terminated;
  if (!t || t.exitCode === 0) return undefined;
  const m = (t.message ?? '').trim();
  return m ? m.split('\n').slice(-1)[0] : `the clone source pod ended with exit code ${t.exitCode}`;
}

/** What makes the pair unclonable (upstream ValidateCanCloneSourceAndTargetSpec), in words a user can act on. */
export function incompatible(src: Pvc, target: Pvc): string | undefined {
  const sReq = src.spec?.resources?.requests?.['storage'];
  const tReq = target.spec?.resources?.requests?.['storage'];
  const sMode = src.spec?.volumeMode ?? 'Filesystem';
  const tMode = target.spec?.volumeMode ?? 'Filesystem';
  if (sReq === undefined || tReq === undefined) return undefined;
  // across volume modes the disk image decides, and the target's upload server says if it does not fit
  if (sMode !== tMode) return undefined;
  try {
    if (parseQuantity(String(tReq)) < parseQuantity(String(sReq)))
      return `target resources requests storage size (${String(tReq)}) is smaller than the source (${String(sReq)}): request at least the source's size`;
  } catch {
    return undefined;
  }
  return undefined;
}

/** Says on the PVC why the clone waits (once per new message: annotation and Warning event). */
async function say(d: HostCloneDeps, pvc: Pvc, reason: string, message: string): Promise<void> {
  const a = anns(pvc);
  if (a[Ann.runningConditionMessage] === message && a[Ann.runningConditionReason] === reason) return;
  await d.kube.mergePatch(Res.pvc, pvc.metadata?.name ?? '', pvc.metadata?.namespace, {
    metadata: {
      resourceVersion: pvc.metadata?.resourceVersion,
      annotations: {
        [Ann.runningCondition]: 'false',
        [Ann.runningConditionReason]: reason,
        [Ann.runningConditionMessage]: message,
      },
    },
  });
  await d.recorder.record(involved(pvc), 'Warning', reason, message);
}

/**
 * True when the PVC may clone from `source`. A short token (from pvc-clone-mutate, or handed down by the
 * DataVolume controller) is exchanged for a long-term one bound to this PVC, as upstream does.
 */
async function checkGrant(d: HostCloneDeps, pvc: Pvc, source: CloneSource): Promise<boolean> {
  const a = anns(pvc);
  const target = {
    namespace: pvc.metadata?.namespace ?? '',
    name: pvc.metadata?.name ?? '',
    uid: pvc.metadata?.uid ?? '',
  };
  try {
    const tokens = await d.tokens(d.kube);
    // a DataVolume's claim: the DataVolume holds the grant (its controller checked it before making this PVC)
    const owner = controllerOf(pvc);
    if (owner?.kind === 'DataVolume') {
      const dv = await d.kube.get<DataVolume>(Res.dataVolume, owner.name, target.namespace);
      if (!dv || dv.metadata.uid !== owner.uid)
        throw new TokenError(`its DataVolume ${target.namespace}/${owner.name} does not exist any more`);
      const long = anns(dv)[Ann.extendedCloneToken];
      await verifyCloneGrant(tokens, long ? { long } : {}, source, {
        namespace: target.namespace,
        name: owner.name,
        uid: owner.uid,
      });
      return true;
    }
    const short = a[Ann.cloneToken];
    if (!a[Ann.extendedCloneToken] && short) {
      const long = await extendCloneToken(tokens, short, source, target);
      await d.kube.mergePatch(Res.pvc, target.name, target.namespace, {
        metadata: {
          resourceVersion: pvc.metadata?.resourceVersion,
          annotations: { [Ann.extendedCloneToken]: long, [Ann.cloneToken]: null },
        },
      });
      return false; // the change queues this PVC again
    }
    const long = a[Ann.extendedCloneToken];
    await verifyCloneGrant(tokens, long ? { long } : {}, source, target);
    return true;
  } catch (e) {
    await say(
      d,
      pvc,
      Reason.NotAuthorized,
      `not authorized to clone ${source.namespace}/${source.name}: ${(e as Error).message}`,
    );
    return false;
  }
}

/** The upload controller's view of these deps: its pod builders serve the clone target. */
function uploadDeps(d: HostCloneDeps): Parameters<typeof createUploadPod>[0] {
  return {
    kube: d.kube,
    recorder: d.recorder,
    log: d.log,
    pod: {
      image: d.uploadServerImage,
      pullPolicy: d.pullPolicy,
      ...(d.verbose ? { verbose: d.verbose } : {}),
      ...(d.nodeSelector ? { nodeSelector: d.nodeSelector } : {}),
    },
  };
}

/**
 * The target's upload server, and the source pod's Secret with the client certificate that server accepts (issued
 * together; a Secret left by an earlier server is replaced). The Secret is created, never read: the controller may
 * not read Secrets outside CDI's namespace.
 */
async function startUploadServer(
  d: HostCloneDeps,
  pvc: Pvc,
  sourceNs: string,
  podName: string,
): Promise<PodObj> {
  const config = await d.kube.get<CDIConfig>(Res.cdiConfig, CDIConfigName);
  if (!config)
    throw new Error(`CDIConfig ${CDIConfigName} does not exist yet; the config controller creates it`);
  const ns = pvc.metadata?.namespace ?? '';
  const certs = await d.certs.forClone(serviceName(podName), ns, cloneClientName(pvc));
  await writeSourceSecret(d, pvc, sourceNs, certs.source);
  return createUploadPod(uploadDeps(d), pvc, podName, config, {
    clientName: cloneClientName(pvc),
    certs: certs.server,
  });
}

async function writeSourceSecret(
  d: HostCloneDeps,
  target: Pvc,
  ns: string,
  c: CloneSourceCerts,
): Promise<void> {
  const name = sourcePodName(target);
  await d.kube.delete(Res.secret, name, ns);
  await d.kube.create<Secret>(Res.secret, {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'Opaque',
    metadata: {
      name,
      namespace: ns,
      labels: sourceLabels,
      annotations: { [Ann.ownerRef]: `${target.metadata?.namespace}/${target.metadata?.name}` },
    },
    stringData: { 'tls.crt': c.pair.certPem, 'tls.key': c.pair.keyPem, 'ca.crt': c.serverCa },
  });
}

const sourceLabels = {
  ...ManagedLabels,
  [Label.app]: Label.appValue,
  [Label.component]: Label.cloneSourceValue,
};

async function createSourcePod(d: HostCloneDeps, target: Pvc, src: Pvc, upload: PodObj): Promise<void> {
  const ns = src.metadata?.namespace ?? '';
  const name = sourcePodName(target);
  const owner = `${target.metadata?.namespace}/${target.metadata?.name}`;
  const block = src.spec?.volumeMode === 'Block';
  const fromSecret = (key: string): { secretKeyRef: { name: string; key: string } } => ({
    secretKeyRef: { name, key },
  });
  const a = anns(target);
  const pod: PodObj = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: ns,
      labels: { ...sourceLabels, [Label.prometheus]: Label.prometheusValue },
      annotations: { [Ann.createdBy]: 'yes', [Ann.ownerRef]: owner },
    },
    spec: {
      containers: [
        {
          name: 'cdi-clone-source',
          image: d.clonerImage,
          imagePullPolicy: d.pullPolicy,
          ...(d.verbose ? { args: [`-v=${d.verbose}`] } : {}),
          env: [
            { name: 'VOLUME_MODE', value: block ? 'block' : 'filesystem' },
            { name: 'MOUNT_POINT', value: block ? Pod.blockPath : SourceMount },
            {
              name: 'UPLOAD_URL',
              value: uploadServerUrl(
                target.metadata?.namespace ?? '',
                target.metadata?.name ?? '',
                '/v1beta1/upload',
              ),
            },
            { name: 'CLIENT_CERT', valueFrom: fromSecret('tls.crt') },
            { name: 'CLIENT_KEY', valueFrom: fromSecret('tls.key') },
            { name: 'SERVER_CA_CERT', valueFrom: fromSecret('ca.crt') },
            // upstream: the DataVolume's uid, else cdi.kubevirt.io/ownerUID (the clone populator's target)
            {
              name: 'OWNER_UID',
              value: a[Ann.createdForDataVolume] || a[ApiAnn.OwnerUID] || (target.metadata?.uid ?? ''),
            },
            { name: 'PREALLOCATION', value: String(a[Ann.preallocationRequested] === 'true') },
          ],
          ports: [{ name: 'metrics', containerPort: Pod.metricsPort, protocol: 'TCP' }],
          terminationMessagePolicy: 'FallbackToLogsOnError',
          ...(block
            ? { volumeDevices: [{ name: Pod.dataVolName, devicePath: Pod.blockPath }] }
            : { volumeMounts: [{ name: Pod.dataVolName, mountPath: SourceMount, readOnly: true }] }),
          securityContext: workerSecurityContext(),
        },
      ],
      volumes: [
        {
          name: Pod.dataVolName,
          persistentVolumeClaim: { claimName: src.metadata?.name ?? '', readOnly: !block },
        },
      ],
      restartPolicy: 'OnFailure',
      enableServiceLinks: false,
      automountServiceAccountToken: false,
      // on the node of the target's server: the stream stays on one host (and an RWO source is attached once)
      ...(upload.spec?.nodeName ? { nodeName: upload.spec.nodeName } : {}),
      ...(a[Ann.priorityClassName] ? { priorityClassName: a[Ann.priorityClassName] } : {}),
      securityContext: { seccompProfile: { type: 'RuntimeDefault' } },
    },
  };
  try {
    await d.kube.create(Res.pod, pod);
    d.log.info('created clone source pod', { namespace: ns, pod: name, target: owner });
  } catch (e) {
    if (!isAlreadyExists(e)) throw e;
  }
}

/** Done or deleted: the source pod and its Secret go, then the upload server, then the finalizer. */
async function finish(d: HostCloneDeps, pvc: Pvc): Promise<void> {
  const source = parseCloneRequest(anns(pvc)[Ann.cloneRequest]);
  const finalizers = pvc.metadata?.finalizers ?? [];
  if (source && finalizers.includes(Finalizer.cloneSource)) {
    const name = sourcePodName(pvc);
    await d.kube.delete(Res.pod, name, source.namespace);
    await d.kube.delete(Res.secret, name, source.namespace);
  }
  if (!pvc.metadata?.deletionTimestamp) await removeUploadServer(d, pvc);
  if (finalizers.includes(Finalizer.cloneSource)) {
    await d.kube.mergePatch(Res.pvc, pvc.metadata?.name ?? '', pvc.metadata?.namespace, {
      metadata: {
        resourceVersion: pvc.metadata?.resourceVersion,
        finalizers: finalizers.filter((f) => f !== Finalizer.cloneSource),
      },
    });
  }
}
