// The controller's clone tokens (upstream: cdi-deployment mounts Secret cdi-api-signing-key): the apiserver's public key
// verifies the webhook's short tokens, and the same key pair signs and verifies the long-term ones.
import { createPrivateKey, createPublicKey } from 'node:crypto';
import type { Secret } from '../../kube/index.ts';
import {
  CloneTokenIssuer,
  CloneTokenLeewayMs,
  ExtendedCloneTokenIssuer,
  ExtendedCloneTokenLifetimeMs,
  type CloneTokens,
} from '../../token/clone.ts';
import { PrivateKeyField, PublicKeyField, SigningKeySecretName } from '../../token/keys.ts';
import { TokenGenerator, TokenValidator } from '../../token/token.ts';
import { Res, type Kube } from '../shared/client.ts';

export type TokenSource = (kube: Kube) => Promise<CloneTokens>;

/** Reads the key pair from `<namespace>/cdi-api-signing-key`, once per version of the Secret. */
export function signingKeyTokens(namespace: string): TokenSource {
  let memo: { version: string; tokens: CloneTokens } | undefined;
  return async (kube) => {
    const s = await kube.get<Secret>(Res.secret, SigningKeySecretName, namespace);
    const priv = s?.data?.[PrivateKeyField];
    const pub = s?.data?.[PublicKeyField];
    if (!s || !priv || !pub)
      throw new Error(
        `the token signing key ${namespace}/${SigningKeySecretName} does not exist yet (cdi-apiserver creates it): clone tokens cannot be checked`,
      );
    const version = s.metadata?.resourceVersion ?? '';
    if (memo?.version === version) return memo.tokens;
    const privateKey = createPrivateKey(Buffer.from(priv, 'base64').toString('utf8'));
    const publicKey = createPublicKey(Buffer.from(pub, 'base64').toString('utf8'));
    const tokens: CloneTokens = {
      short: new TokenValidator(CloneTokenIssuer, publicKey, CloneTokenLeewayMs),
      long: new TokenValidator(ExtendedCloneTokenIssuer, publicKey, CloneTokenLeewayMs),
      longGenerator: new TokenGenerator(ExtendedCloneTokenIssuer, privateKey, ExtendedCloneTokenLifetimeMs),
    };
    memo = { version, tokens };
    return tokens;
  };
}
