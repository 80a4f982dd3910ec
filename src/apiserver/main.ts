/**
 * cdi-apiserver as a process:
 *   --kubeconfig <path> / KUBECONFIG      out of cluster; otherwise the pod's service account
 *   POD_NAMESPACE                         the CDI namespace (Secret cdi-api-signing-key lives there)
 *   CERT_FILE, KEY_FILE                   serving certificate (default /var/run/certs/cdi-apiserver-server-cert/tls.*)
 *   LISTEN_ADDRESS (0.0.0.0), LISTEN_PORT (8443)
 *   TLS_MIN_VERSION, TLS_CIPHERS          as the other CDI servers
 * The serving certificate and the front-proxy settings are re-read while it runs (certificates rotate).
 */
import { readKeyPair, followTls, tlsProfileFromEnv } from '../certs/tls.ts';
import { jsonLogger, KubeClient } from '../kube/index.ts';
import { getOrCreateSigningKey } from '../token/keys.ts';
import { CloneTokenIssuer, CloneTokenLifetimeMs } from '../token/clone.ts';
import { TokenGenerator, UploadTokenIssuer, UploadTokenLifetimeMs } from '../token/token.ts';
import { processKubeConfig, processNamespace } from '../cmd/kubeconfig.ts';
import { readAuthConfig, type AuthConfig } from './authn.ts';
import { CdiApiServer } from './server.ts';
import { webhooks } from './webhooks/index.ts';

type Env = Record<string, string | undefined>;

export interface RunningApiServer {
  port: number;
  close(): Promise<void>;
}

export async function startApiServer(argv: string[], env: Env = process.env): Promise<RunningApiServer> {
  const log = jsonLogger({ component: 'cdi-apiserver' });
  const say = (msg: string): void => log.info(msg);
  const kube = new KubeClient(processKubeConfig(argv, env));
  const namespace = processNamespace(env);
  const certFile = env.CERT_FILE || '/var/run/certs/cdi-apiserver-server-cert/tls.crt';
  const keyFile = env.KEY_FILE || '/var/run/certs/cdi-apiserver-server-cert/tls.key';
  const tls = await readKeyPair(certFile, keyFile);
  const { privateKey } = await getOrCreateSigningKey(kube, namespace);
  let auth: AuthConfig = await readAuthConfig(kube);
  if (!auth.requestHeaderCa) {
    say('the cluster has no request-header CA yet: upload token requests are refused until it has one');
  }
  const server = new CdiApiServer({
    kube,
    tokens: new TokenGenerator(UploadTokenIssuer, privateKey, UploadTokenLifetimeMs),
    authConfig: () => auth,
    tls: { ...tls, ...tlsProfileFromEnv(env) },
    webhooks: webhooks({
      kube,
      namespace,
      cloneTokens: new TokenGenerator(CloneTokenIssuer, privateKey, CloneTokenLifetimeMs),
    }),
    log: say,
  });
  const port = await server.listen(Number(env.LISTEN_PORT ?? 8443), env.LISTEN_ADDRESS ?? '0.0.0.0');
  say(`cdi-apiserver listening on ${env.LISTEN_ADDRESS ?? '0.0.0.0'}:${port} (namespace ${namespace})`);
  const stopCert = followTls(
    () => readKeyPair(certFile, keyFile),
    (o) => {
      say('serving certificate changed; reloading');
      server.reloadTls(o as { cert: string; key: string });
    },
    10_000,
    (e) => say(`serving certificate: ${e.message}`),
  );
  const authTimer = setInterval(() => {
    void readAuthConfig(kube).then(
      (next) => {
        if (JSON.stringify(next) === JSON.stringify(auth)) return;
        auth = next;
        say('the front-proxy settings changed; reloading');
        server.reloadTls();
      },
      (e: Error) => say(`reading the front-proxy settings: ${e.message}`),
    );
  }, 30_000);
  authTimer.unref();
  return {
    port,
    close: async () => {
      stopCert();
      clearInterval(authTimer);
      await server.close();
    },
  };
}
