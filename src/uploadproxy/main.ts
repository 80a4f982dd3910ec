/**
 * cdi-uploadproxy as a process (upstream cmd/cdi-uploadproxy):
 *   --kubeconfig <path> / KUBECONFIG      out of cluster; otherwise the pod's service account
 *   POD_NAMESPACE                         the CDI namespace (where the upload-server CA bundle ConfigMap is)
 *   APISERVER_PUBLIC_KEY                  PEM public key of cdi-api-signing-key (required)
 *   SERVER_CERT_FILE, SERVER_KEY_FILE     serving certificate (default /var/run/certs/cdi-uploadproxy-server-cert/tls.*)
 *   UPLOAD_CLIENT_CERT_FILE, UPLOAD_CLIENT_KEY_FILE
 *                                         client certificate for the upload servers
 *                                         (default /var/run/certs/cdi-uploadserver-client-cert/tls.*)
 *   UPLOAD_SERVER_CA_BUNDLE_CONFIG_MAP    the upload servers' CA bundle (default cdi-uploadserver-signer-bundle)
 *   LISTEN_ADDRESS (0.0.0.0), LISTEN_PORT (8443), TLS_MIN_VERSION, TLS_CIPHERS
 */
import { loadBundle } from '../certs/reconcile.ts';
import { followTls, readKeyPair, tlsProfileFromEnv } from '../certs/tls.ts';
import { processKubeConfig, processNamespace } from '../cmd/kubeconfig.ts';
import { jsonLogger, KubeClient, Resources, type PersistentVolumeClaim } from '../kube/index.ts';
import { publicKeyFromPem } from '../token/keys.ts';
import { TokenValidator, UploadTokenIssuer, UploadTokenLeewayMs } from '../token/token.ts';
import { UploadProxy } from './proxy.ts';

type Env = Record<string, string | undefined>;

export async function startUploadProxy(
  argv: string[],
  env: Env = process.env,
): Promise<{ port: number; close: () => Promise<void> }> {
  const log = jsonLogger({ component: 'cdi-uploadproxy' });
  const say = (m: string): void => log.info(m);
  const pem = env.APISERVER_PUBLIC_KEY;
  if (!pem) throw new Error('APISERVER_PUBLIC_KEY is not set (the id_rsa.pub of Secret cdi-api-signing-key)');
  const publicKey = publicKeyFromPem(pem, 'APISERVER_PUBLIC_KEY');
  const kube = new KubeClient(processKubeConfig(argv, env));
  const namespace = processNamespace(env);
  const certFile = env.SERVER_CERT_FILE || '/var/run/certs/cdi-uploadproxy-server-cert/tls.crt';
  const keyFile = env.SERVER_KEY_FILE || '/var/run/certs/cdi-uploadproxy-server-cert/tls.key';
  const clientCert = env.UPLOAD_CLIENT_CERT_FILE || '/var/run/certs/cdi-uploadserver-client-cert/tls.crt';
  const clientKey = env.UPLOAD_CLIENT_KEY_FILE || '/var/run/certs/cdi-uploadserver-client-cert/tls.key';
  const bundle = env.UPLOAD_SERVER_CA_BUNDLE_CONFIG_MAP || 'cdi-uploadserver-signer-bundle';
  const proxy = new UploadProxy({
    validator: new TokenValidator(UploadTokenIssuer, publicKey, UploadTokenLeewayMs),
    getPvc: (ns, name) =>
      kube.getOrUndefined<PersistentVolumeClaim>(Resources.PersistentVolumeClaim, name, ns),
    clientTls: async () => {
      const { cert, key } = await readKeyPair(clientCert, clientKey);
      return { cert, key, ca: await loadBundle(kube, namespace, bundle) };
    },
    tls: { ...(await readKeyPair(certFile, keyFile)), ...tlsProfileFromEnv(env) },
    log: say,
  });
  const port = await proxy.listen(Number(env.LISTEN_PORT ?? 8443), env.LISTEN_ADDRESS ?? '0.0.0.0');
  say(`cdi-uploadproxy listening on ${env.LISTEN_ADDRESS ?? '0.0.0.0'}:${port}`);
  const stop = followTls(
    () => readKeyPair(certFile, keyFile),
    (o) => {
      say('serving certificate changed; reloading');
      proxy.reloadTls(o as { cert: string; key: string });
    },
    10_000,
    (e) => say(`serving certificate: ${e.message}`),
  );
  return {
    port,
    close: async () => {
      stop();
      await proxy.close();
    },
  };
}
