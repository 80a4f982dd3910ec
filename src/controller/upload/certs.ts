// The certificates of the upload path, kept by the controller until the operator owns them (cdi-upstream.md §6,
// src/certs/reconcile.ts; same Secret and ConfigMap names as upstream, so the operator takes the objects over as they
// are). Runs beside the reconcilers on the leader: once at start, then again when the earliest certificate is due for
// its refresh (at most an hour later, so that a Secret someone deleted comes back), and on failure with back-off.
// Mode "read" (the operator owns them) only reads. Either way it keeps the upload server CA and the client CA bundle
// in memory: the upload controller issues one server certificate per upload pod from them without reading a Secret
// per reconcile. The APIService is not the controller's: an APIService whose Service is missing makes discovery fail
// for every client of the cluster, so it is applied by whoever installs cdi-apiserver (the operator; the e2e harness).
import { X509Certificate } from 'node:crypto';
import {
  CertDefinitions,
  issueUploadServerCert,
  loadBundle,
  loadSigner,
  reconcileCertificates,
} from '../../certs/reconcile.ts';
import type { KeyPair, Signer } from '../../certs/pki.ts';
import { DefaultCertConfig, refreshAt, type CertsConfig } from '../../certs/rotation.ts';
import {
  Backoff,
  errorMessage,
  realClock,
  Resources,
  sleep,
  type Clock,
  type KubeClient,
  type Logger,
  type Secret,
} from '../../kube/index.ts';

export const UploadServerSigner = 'cdi-uploadserver-signer';
export const UploadServerClientBundle = 'cdi-uploadserver-client-signer-bundle';
/** The Secrets whose certificates decide when the next run is due, with the config each was made with. */
const Watched: { secret: string; config: keyof CertsConfig }[] = CertDefinitions.flatMap((d) => [
  { secret: d.signerSecret, config: 'ca' as const },
  ...(d.target
    ? [{ secret: d.target.secret, config: 'service' in d.target ? ('server' as const) : ('client' as const) }]
    : []),
]);
const MaxIntervalMs = 3600_000;

/** What the upload controller needs to start an upload server pod. */
export interface UploadCertSource {
  /** A serving certificate for Service `service` in `namespace`, from the upload server CA. */
  serverCert(service: string, namespace: string): Promise<KeyPair>;
  /** The CA bundle client certificates must chain to (the upload proxy's client CA). */
  clientCaBundle(): string;
  /** When a pod started now should stop (upstream: the shorter of the server and client refresh intervals). */
  deadline(): Date;
}

export class NotReadyError extends Error {
  override name = 'NotReadyError';
}

export class UploadCertificates implements UploadCertSource {
  private readonly kube: KubeClient;
  private readonly namespace: string;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly config: CertsConfig;
  private signer: Signer | undefined;
  private clientCa = '';
  private readonly onReady: () => void;
  private readonly mode: 'reconcile' | 'read';

  constructor(o: {
    client: KubeClient;
    namespace: string;
    log: Logger;
    clock?: Clock;
    config?: CertsConfig;
    /** "reconcile" creates and rotates them (until the operator does); "read" only reads them. */
    mode?: 'reconcile' | 'read';
    /** Called after every successful run (the upload PVCs waiting for a CA are queued again). */
    onReady?: () => void;
  }) {
    this.kube = o.client;
    this.namespace = o.namespace;
    this.log = o.log;
    this.clock = o.clock ?? realClock;
    this.config = o.config ?? DefaultCertConfig;
    this.onReady = o.onReady ?? (() => {});
    this.mode = o.mode ?? 'reconcile';
  }

  get ready(): boolean {
    return this.signer !== undefined && this.clientCa !== '';
  }

  serverCert(service: string, namespace: string): Promise<KeyPair> {
    if (!this.signer)
      return Promise.reject(
        new NotReadyError(
          `the upload server CA (Secret ${this.namespace}/${UploadServerSigner}) is not reconciled yet`,
        ),
      );
    return issueUploadServerCert(
      this.signer,
      service,
      namespace,
      this.config.server,
      new Date(this.clock.now()),
    );
  }

  clientCaBundle(): string {
    if (!this.clientCa)
      throw new NotReadyError(
        `the upload client CA bundle (ConfigMap ${this.namespace}/${UploadServerClientBundle}) is not reconciled yet`,
      );
    return this.clientCa;
  }

  deadline(): Date {
    const s = this.config.server;
    const c = this.config.client;
    return new Date(this.clock.now() + Math.min(s.duration - s.renewBefore, c.duration - c.renewBefore));
  }

  /** One run: the certificates, the in-memory CA; returns ms until the next is due. */
  async syncOnce(): Promise<number> {
    const now = (): Date => new Date(this.clock.now());
    const changes =
      this.mode === 'reconcile'
        ? await reconcileCertificates(this.kube, { namespace: this.namespace, config: this.config, now })
        : [];
    for (const c of changes)
      this.log.info(`certificate ${c.action}: ${c.kind} ${this.namespace}/${c.name}`, { reason: c.reason });
    this.signer = await loadSigner(this.kube, this.namespace, UploadServerSigner);
    this.clientCa = await loadBundle(this.kube, this.namespace, UploadServerClientBundle);
    let next = this.clock.now() + MaxIntervalMs;
    for (const w of Watched) {
      const s = await this.kube.getOrUndefined<Secret>(Resources.Secret, w.secret, this.namespace);
      const pem = s?.data?.['tls.crt'];
      if (!pem) continue;
      const at = refreshAt(new X509Certificate(Buffer.from(pem, 'base64')), this.config[w.config]).getTime();
      next = Math.min(next, at);
    }
    return Math.max(1000, next - this.clock.now());
  }

  /** Until the signal aborts. */
  async run(signal: AbortSignal): Promise<void> {
    const backoff = new Backoff({ initialMs: 1000, maxMs: 60_000 });
    while (!signal.aborted) {
      let wait: number;
      try {
        wait = await this.syncOnce();
        backoff.reset();
        this.onReady();
      } catch (e) {
        wait = backoff.next();
        this.log.error(`reconciling the upload certificates failed: ${errorMessage(e)}; retrying`, {
          retryInMs: wait,
        });
      }
      await sleep(this.clock, wait, signal);
    }
  }
}
