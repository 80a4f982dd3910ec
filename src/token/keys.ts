/**
 * The token signing key (upstream pkg/keys): an RSA 2048 key in Secret `cdi-api-signing-key` of the CDI namespace,
 * `id_rsa` (PKCS#1 PEM) and `id_rsa.pub` (SPKI PEM). cdi-apiserver creates it on first start; cdi-uploadproxy gets the
 * public half through its env (APISERVER_PUBLIC_KEY from the Secret), the controller mounts it for clone tokens.
 */
import { createPrivateKey, createPublicKey, generateKeyPair, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { Resources, type KubeClient, type Secret } from '../kube/index.ts';

export const SigningKeySecretName = 'cdi-api-signing-key';
export const PrivateKeyField = 'id_rsa';
export const PublicKeyField = 'id_rsa.pub';

const generateRsa = promisify(generateKeyPair);

export interface SigningKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
}

/** Reads a PEM public key (SPKI "PUBLIC KEY" or PKCS#1 "RSA PUBLIC KEY"), with a clear error. */
export function publicKeyFromPem(pem: string, what = 'the public key'): KeyObject {
  try {
    const k = createPublicKey(pem);
    if (k.asymmetricKeyType !== 'rsa') throw new Error(`it is a ${k.asymmetricKeyType} key, not RSA`);
    return k;
  } catch (e) {
    throw new Error(`${what} is not a PEM RSA public key: ${(e as Error).message}`);
  }
}

/** Gets the signing key, creating the Secret when it does not exist (a concurrent creator wins; its key is used). */
export async function getOrCreateSigningKey(
  kube: KubeClient,
  namespace: string,
  name = SigningKeySecretName,
  labels: Record<string, string> = { 'cdi.kubevirt.io': 'keystore' },
): Promise<SigningKey> {
  let secret = await kube.getOrUndefined<Secret>(Resources.Secret, name, namespace);
  if (!secret) {
    const { privateKey, publicKey } = await generateRsa('rsa', {
      modulusLength: 2048,
      publicExponent: 0x10001,
    });
    const data = {
      [PrivateKeyField]: Buffer.from(privateKey.export({ type: 'pkcs1', format: 'pem' })).toString('base64'),
      [PublicKeyField]: Buffer.from(publicKey.export({ type: 'spki', format: 'pem' })).toString('base64'),
    };
    ({ object: secret } = await kube.createOrGet<Secret>(Resources.Secret, {
      metadata: { name, namespace, labels },
      type: 'Opaque',
      data,
    }));
  }
  const pem = secret.data?.[PrivateKeyField];
  if (!pem) throw new Error(`the Secret ${namespace}/${name} has no ${PrivateKeyField}`);
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(Buffer.from(pem, 'base64').toString('utf8'));
  } catch (e) {
    throw new Error(`the Secret ${namespace}/${name} holds no usable private key: ${(e as Error).message}`);
  }
  return { privateKey, publicKey: createPublicKey(privateKey) };
}
