// Discovery documents of the aggregated group upload.cdi.kubevirt.io (upstream composeUploadTokenAPI): the
// kube-apiserver reads them to publish the group, and checks /apis/<group>/<version> for the APIService's
// availability. Served to anyone, without authentication, as upstream.
import { UploadApiVersion, UploadGroup, UploadTokenRequestResource, UploadVersion } from '../api/upload.ts';

export const GroupPath = `/apis/${UploadGroup}`;
export const VersionPath = `/apis/${UploadApiVersion}`;

export function apiGroup(): Record<string, unknown> {
  const gv = { groupVersion: UploadApiVersion, version: UploadVersion };
  return {
    kind: 'APIGroup',
    apiVersion: 'v1',
    name: UploadGroup,
    versions: [gv],
    preferredVersion: gv,
    serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: '' }],
  };
}

export function apiGroupList(): Record<string, unknown> {
  return { kind: 'APIGroupList', apiVersion: 'v1', groups: [apiGroup()] };
}

export function apiResourceList(): Record<string, unknown> {
  return {
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion: UploadApiVersion,
    resources: [
      {
        name: UploadTokenRequestResource.plural,
        singularName: UploadTokenRequestResource.singular,
        namespaced: true,
        group: UploadGroup,
        version: UploadVersion,
        kind: UploadTokenRequestResource.kind,
        verbs: [...UploadTokenRequestResource.verbs],
        shortNames: ['utr', 'utrs'],
      },
    ],
  };
}

export function rootPaths(extra: string[]): Record<string, unknown> {
  return { paths: ['/apis', '/apis/', GroupPath, '/healthz', VersionPath, ...extra].sort() };
}
