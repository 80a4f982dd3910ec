/**
 * Who is asking, for requests the kube-apiserver's aggregation layer forwards: the kube-apiserver authenticates the
 * user, then proxies with its front-proxy client certificate and the user in X-Remote-User / X-Remote-Group /
 * X-Remote-Extra-* headers. Those headers are trusted only when the TLS client certificate verified against the
 * request-header CA and its CN is one of the allowed names, all read from ConfigMap
 * kube-system/extension-apiserver-authentication (upstream pkg/apiserver/auth-config.go, authorizer.go).
 */
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { Resources, type ConfigMap, type KubeClient } from '../kube/index.ts';

export const AuthConfigMap = {
  namespace: 'kube-system',
  name: 'extension-apiserver-authentication',
} as const;

export interface AuthConfig {
  /** PEM of the CA that signs the front-proxy client certificate; undefined when the cluster has no aggregation. */
  requestHeaderCa: string | undefined;
  /** CNs allowed to assert users; empty means any certificate from the CA. */
  allowedNames: string[];
  userHeaders: string[];
  groupHeaders: string[];
  extraPrefixes: string[];
}

export interface UserInfo {
  user: string;
  groups: string[];
  extra: Record<string, string[]>;
}

function list(v: string | undefined): string[] {
  if (!v) return [];
  try {
    const a = JSON.parse(v) as unknown;
    return Array.isArray(a) ? a.filter((x): x is string => typeof x === 'string') : [];
  } catch {
    return [];
  }
}

export function parseAuthConfig(cm: ConfigMap | undefined): AuthConfig {
  const d = cm?.data ?? {};
  return {
    requestHeaderCa: d['requestheader-client-ca-file'] || undefined,
    allowedNames: list(d['requestheader-allowed-names']),
    userHeaders: list(d['requestheader-username-headers']),
    groupHeaders: list(d['requestheader-group-headers']),
    extraPrefixes: list(d['requestheader-extra-headers-prefix']),
  };
}

export async function readAuthConfig(kube: KubeClient): Promise<AuthConfig> {
  return parseAuthConfig(
    await kube.getOrUndefined<ConfigMap>(Resources.ConfigMap, AuthConfigMap.name, AuthConfigMap.namespace),
  );
}

export class AuthError extends Error {
  override name = 'AuthError';
}

/** The user the front proxy vouches for; AuthError when the request does not come from it. */
export function authenticate(req: IncomingMessage, cfg: AuthConfig): UserInfo {
  if (!cfg.requestHeaderCa) {
    throw new AuthError(
      `the cluster has no request-header CA in ${AuthConfigMap.namespace}/${AuthConfigMap.name} (kube-apiserver runs without --requestheader-client-ca-file)`,
    );
  }
  const sock = req.socket as TLSSocket;
  if (typeof sock.getPeerCertificate !== 'function' || !sock.authorized) {
    throw new AuthError('request is not authenticated: no client certificate from the front-proxy CA');
  }
  const cn = sock.getPeerCertificate().subject?.CN;
  const names = Array.isArray(cn) ? cn : cn !== undefined ? [cn] : [];
  if (cfg.allowedNames.length > 0 && !names.some((n) => cfg.allowedNames.includes(n))) {
    throw new AuthError(
      `the client certificate ${names.join(',')} is not one of the allowed front-proxy names`,
    );
  }
  const values = (name: string): string[] | undefined => req.headersDistinct[name.toLowerCase()];
  const userHeader = cfg.userHeaders.find((h) => values(h) !== undefined);
  const user = userHeader ? values(userHeader)?.[0] : undefined;
  if (!user) throw new AuthError(`one of these headers is required: ${cfg.userHeaders.join(', ')}`);
  const groups = cfg.groupHeaders.flatMap((h) => values(h) ?? []);
  const extra: Record<string, string[]> = {};
  for (const prefix of cfg.extraPrefixes) {
    const p = prefix.toLowerCase();
    for (const [k, v] of Object.entries(req.headersDistinct)) {
      if (!k.startsWith(p) || !v) continue;
      let key = k.slice(p.length);
      try {
        key = decodeURIComponent(key);
      } catch {
        // a malformed escape is kept as it is (as upstream)
      }
      extra[key] = [...(extra[key] ?? []), ...v];
    }
  }
  return { user, groups, extra };
}
