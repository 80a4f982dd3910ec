// UploadTokenRequest (upload.cdi.kubevirt.io/v1beta1, namespaced, create only). Not a CRD: cdi-apiserver serves
// it through an APIService (aggregated API). A client creates one naming the PVC to upload to and gets back a
// signed token for the upload proxy's `Authorization: Bearer` header. Shapes follow upstream's
// pkg/apis/upload/v1beta1/types.go.
import Type, { type Static } from 'typebox';
import { ObjectMeta } from './k8s.ts';

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
