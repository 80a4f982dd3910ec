// UploadTokenRequest (upload.cdi.kubevirt.io/v1beta1, namespaced, create only). Not a CRD: cdi-apiserver serves
// it through an APIService (aggregated API). A client creates one naming the PVC to upload to and gets back a
// signed token for the upload proxy's `Authorization: Bearer` header. Shapes follow upstream's
// pkg/apis/upload/v1beta1/types.go.
import Type, { type Static } from 'typebox';
import { ObjectMeta } from './k8s.ts';
import { resourceName, serviceName } from './naming.ts';

export const UploadGroup = 'upload.cdi.kubevirt.io';
export const UploadVersion = 'v1beta1';
export const UploadApiVersion = `${UploadGroup}/${UploadVersion}`;

/** Where the aggregated API serves the kind (discovery and REST path). */
export const UploadTokenRequestResource = {
  group: UploadGroup,
  version: UploadVersion,
  kind: 'UploadTokenRequest',
  listKind: 'UploadTokenRequestList',
  plural: 'uploadtokenrequests',
  singular: 'uploadtokenrequest',
  namespaced: true,
  verbs: ['create'],
} as const;

export const UploadTokenRequestSpec = Type.Object(
  { pvcName: Type.String({ description: 'The name of the PVC to upload to, in the request namespace.' }) },
  { description: 'The parameters of the token request.' },
);

export const UploadTokenRequestStatus = Type.Object(
  {
    token: Type.Optional(
      Type.String({ description: 'The token for the "Authorization: Bearer" header of the upload proxy.' }),
    ),
  },
  { description: 'The status of the request.' },
);

export const UploadTokenRequest = Type.Object(
  {
    apiVersion: Type.Optional(Type.String({ description: 'upload.cdi.kubevirt.io/v1beta1' })),
    kind: Type.Optional(Type.String({ description: 'UploadTokenRequest' })),
    metadata: Type.Optional(ObjectMeta),
    spec: UploadTokenRequestSpec,
    // the server fills it; a request may leave it out
    status: Type.Optional(UploadTokenRequestStatus),
  },
  { description: 'A request for an upload token for one PVC.' },
);
export type UploadTokenRequest = Static<typeof UploadTokenRequest>;

export interface UploadTokenRequestList {
  apiVersion: typeof UploadApiVersion;
  kind: 'UploadTokenRequestList';
  metadata: { resourceVersion?: string; continue?: string };
  items: UploadTokenRequest[];
}

// ---- the upload protocol (cdi-uploadproxy, the upload server, clients) ----

export const UploadPath = {
  Sync: '/v1beta1/upload',
  Async: '/v1beta1/upload-async',
  Archive: '/v1beta1/upload-archive',
  FormSync: '/v1beta1/upload-form',
  FormAsync: '/v1beta1/upload-form-async',
  SyncAlpha: '/v1alpha1/upload',
  AsyncAlpha: '/v1alpha1/upload-async',
  ArchiveAlpha: '/v1alpha1/upload-archive',
  FormSyncAlpha: '/v1alpha1/upload-form',
  FormAsyncAlpha: '/v1alpha1/upload-form-async',
  Healthz: '/healthz',
} as const;

export const SyncUploadPaths: readonly string[] = [UploadPath.Sync, UploadPath.SyncAlpha];
export const AsyncUploadPaths: readonly string[] = [UploadPath.Async, UploadPath.AsyncAlpha];
export const ArchiveUploadPaths: readonly string[] = [UploadPath.Archive, UploadPath.ArchiveAlpha];
export const SyncFormPaths: readonly string[] = [UploadPath.FormSync, UploadPath.FormSyncAlpha];
export const AsyncFormPaths: readonly string[] = [UploadPath.FormAsync, UploadPath.FormAsyncAlpha];
/** What the proxy forwards (archive is chosen by the proxy from the PVC's content type). */
export const ProxyPaths: readonly string[] = [
  ...SyncUploadPaths,
  ...AsyncUploadPaths,
  ...SyncFormPaths,
  ...AsyncFormPaths,
];

/** Port of the upload server pods and of `cdi-upload-<pvc>` Services. */
export const UploadServerPort = 8443;

export const UploadHeader = {
  /** upstream: set by the host-assisted clone source (`filesystem-clone` | `blockdevice-clone`) */
  ContentType: 'x-cdi-content-type',
  /** cdi-ts, optional: `algo:hex` of the body as sent; the server refuses a body that does not match */
  Checksum: 'x-cdi-checksum',
  /** cdi-ts, optional: opts an upload into resume; the client's id for it (docs/upload.md) */
  UploadId: 'x-cdi-upload-id',
  /** cdi-ts: bytes of the body the server holds (HEAD answer), or where a continuation starts (POST) */
  UploadOffset: 'x-cdi-upload-offset',
  /** cdi-ts: why a resumable upload cannot continue (on HEAD answers, which carry no body) */
  UploadError: 'x-cdi-upload-error',
  /** cdi-ts, optional: `namespace/name` of the PVC the client means; the proxy refuses a token for another one */
  UploadTarget: 'x-cdi-upload-target',
} as const;

export const CloneContentType = { Filesystem: 'filesystem-clone', Block: 'blockdevice-clone' } as const;

/** The upload server pod (and its cert Secret) of a PVC: `cdi-upload-<pvc>`, shortened as upstream when too long. */
export function uploadPodName(pvcName: string): string {
  return resourceName('cdi-upload', pvcName);
}

/** The upload server's Service for a PVC (a DNS label). */
export function uploadServiceName(pvcName: string): string {
  return serviceName(uploadPodName(pvcName));
}

/** The URL cdi-uploadproxy forwards to for a PVC (upstream GetUploadServerURL). */
export function uploadServerUrl(namespace: string, pvcName: string, path: string): string {
  return `https://${uploadServiceName(pvcName)}.${namespace}.svc:${UploadServerPort}${path}`;
}
