// Authorization by SubjectAccessReview: asks the kube-apiserver whether the user the front proxy vouched for may do
// something, as upstream's authorizer does for every upload token request.
import { HttpMethod } from '@kubernetes/client-node';
import type { KubeClient } from '../kube/index.ts';
import type { UserInfo } from './authn.ts';

export interface ResourceAttributes {
  namespace?: string;
  verb: string;
  group: string;
  version?: string;
  resource: string;
  subresource?: string;
  name?: string;
}

export interface AccessDecision {
  allowed: boolean;
  reason: string;
}

interface SubjectAccessReview {
  status?: { allowed?: boolean; denied?: boolean; reason?: string; evaluationError?: string };
}

export async function subjectAccessReview(
  kube: KubeClient,
  who: UserInfo,
  attrs: ResourceAttributes,
): Promise<AccessDecision> {
  const r = await kube.request<SubjectAccessReview>(
    HttpMethod.POST,
    '/apis/authorization.k8s.io/v1/subjectaccessreviews',
    {
      body: {
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SubjectAccessReview',
        spec: { user: who.user, groups: who.groups, extra: who.extra, resourceAttributes: attrs },
      },
    },
  );
  return { allowed: r.status?.allowed === true, reason: r.status?.reason ?? r.status?.evaluationError ?? '' };
}
