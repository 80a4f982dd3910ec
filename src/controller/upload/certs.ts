// The certificates of the upload path, kept by the controller until the operator owns them (cdi-upstream.md §6,
// src/certs/reconcile.ts; same Secret and ConfigMap names as upstream, so the operator takes the objects over as they
// are). Runs beside the reconcilers on the leader: once at start, then again when the earliest certificate is due for
// its refresh (at most an hour later, so that a Secret someone deleted comes back), and on failure with back-off.
// Mode "read" (the operator owns them) only reads. Either way a run that finds the CA and the client CA bundle queues
// the upload PVCs again; for each upload pod they are read afresh (a CA the operator rotated, or made anew for a
// changed certConfig, is used at once) with the CDI resource's certConfig, as upstream's createUploadPodForPvc does.
// The APIService is not the controller's: an APIService whose Service is missing makes discovery fail for every
// client of the cluster, so it is applied by whoever installs cdi-apiserver (the operator; the e2e harness).
import { X509Certificate } from 'node:crypto';
import {
  CertDefinitions,
  issueUploadServerCert,
  loadBundle,
  loadSigner,
  reconcileCertificates,
} from '../../certs/reconcile.ts';
import { issueClientCert, parseBundle, validityFrom, type KeyPair, type Signer } from '../../certs/pki.ts';
import { DefaultCertConfig, leafGraceFor, refreshAt, type CertsConfig } from '../../certs/rotation.ts';
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
export const UploadServerClientSigner = 'cdi-uploadserver-client-signer';
export const UploadServerBundle = 'cdi-uploadserver-signer-bundle';
/** The Secrets whose certificates decide when the next run is due, with the config each was made with. */
const Watched: { secret: string; config: keyof CertsConfig }[] = CertDefinitions.flatMap((d) => [
  { secret: d.signerSecret, config: 'ca' as const },
  ...(d.target
    ? [{ secret: d.target.secret, config: 'service' in d.target ? ('server' as const) : ('client' as const) }]
    : []),
]);
const MaxIntervalMs = 3600_000;

/** What an upload server pod is started with. */
export interface UploadPodCerts {
  /** Its serving certificate, from the upload server CA. */
  pair: KeyPair;
  /** The CA bundle client certificates must chain to (the upload proxy's client CA). */
  clientCa: string;
  /** When it should stop (uploadPodDeadline). */
  deadline: Date;
}

/** What the source pod of a host-assisted clone is started with. */
export interface CloneSourceCerts {
  /** Its client certificate (CN: the name the target's server accepts), from the upload server client CA. */
  pair: KeyPair;
  /** The CA bundle the target's server certificate chains to. */
  serverCa: string;
}

/** What the upload and clone controllers need to start an upload server pod (and a clone's source pod). */
export interface UploadCertSource {
  /** The certificates and deadline of a pod serving Service `service` in `namespace`, started now. */
  forPod(service: string, namespace: string): Promise<UploadPodCerts>;
  /**
   * A host-assisted clone's pair, from one reading of the CAs: the target's server pod, and the source pod's client
   * certificate (CN `clientName`), which chains to a CA in the bundle that server is given (and the server's to one in
   * the source's). Issued together, so a client CA rotated between the server's start and the source's cannot split
   * them; the server's deadline (uploadPodDeadline) comes before the client certificate's refresh, and a new server
   * comes with a new source certificate.
   */
  forClone(
    service: string,
    namespace: string,
    clientName: string,
  ): Promise<{ server: UploadPodCerts; source: CloneSourceCerts }>;
}

/** The bundle holds the signer's certificate (the operator writes a rotated CA's Secret before its bundle). */
function checkInBundle(bundle: string, signer: Signer, what: string): void {
  const fp = signer.cert.fingerprint256;
  if (!parseBundle(bundle).some((c) => c.fingerprint256 === fp))
    throw new Error(
      `the bundle of CA ${what} does not hold its current certificate yet (just rotated); retrying`,
    );
}

/** A cap closer than this is not applied (a rotation the operator is late with must not make pods churn). */
const MinPodLifeMs = 10_000;

/**
 * When an upload pod started at `now` stops. Upstream: after the shorter of the server and client leaf refresh
 * intervals. Beyond upstream, never after its fixed trust can break: the pod is given the client CA bundle once, so it
 * stops before the proxy's client certificate can be signed by a CA it does not know (the newest client CA's refresh
 * plus the operator's leaf grace), and before the CA of its own certificate expires. A cap less than 10 s away is left
 * out: the rotation it waits for is late, and the leaf grace covers the pod until then.
 */
export function uploadPodDeadline(
  now: number,
  config: CertsConfig,
  serverCa: X509Certificate,
  clientCa: X509Certificate | undefined,
): Date {
  const s = config.server;
  const c = config.client;
  let at = now + Math.min(s.duration - s.renewBefore, c.duration - c.renewBefore);
  const caps = [new Date(serverCa.validTo).getTime()];
  if (clientCa) caps.push(refreshAt(clientCa, config.ca).getTime() + leafGraceFor(config.ca));
  for (const cap of caps) if (cap >= now + MinPodLifeMs) at = Math.min(at, cap);
  return new Date(at);
}

export class UploadCertificates implements UploadCertSource {
  private readonly kube: KubeClient;
  private readonly namespace: string;
  private readonly log: Logger;
  private readonly clock: Clock;
  private config: CertsConfig;
  private readonly configFrom: (() => Promise<CertsConfig>) | undefined;
  private readonly onReady: () => void;
  private readonly mode: 'reconcile' | 'read';

  constructor(o: {
    client: KubeClient;
    namespace: string;
    log: Logger;
    clock?: Clock;
    config?: CertsConfig;
    /** Mode "read": the lifetimes the operator makes them with (CDI.spec.certConfig), read for every pod. */
    configFrom?: () => Promise<CertsConfig>;
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
    this.configFrom = o.configFrom;
    this.onReady = o.onReady ?? (() => {});
    this.mode = o.mode ?? 'reconcile';
  }

  /** Reads the CA and the client bundle now: a missing one fails with loadSigner's or loadBundle's message. */
  async forPod(service: string, namespace: string): Promise<UploadPodCerts> {
    const [signer, clientCa, config] = await Promise.all([
      loadSigner(this.kube, this.namespace, UploadServerSigner),
      loadBundle(this.kube, this.namespace, UploadServerClientBundle),
      this.certsConfig(),
    ]);
    return this.issuePod(signer, clientCa, config, service, namespace);
  }

  private certsConfig(): Promise<CertsConfig> {
    return this.configFrom ? this.configFrom() : Promise.resolve(this.config);
  }

  private async issuePod(
    signer: Signer,
    clientCa: string,
    config: CertsConfig,
    service: string,
    namespace: string,
  ): Promise<UploadPodCerts> {
    const now = this.clock.now();
    const pair = await issueUploadServerCert(signer, service, namespace, config.server, new Date(now));
    return {
      pair,
      clientCa,
      deadline: uploadPodDeadline(now, config, signer.cert, parseBundle(clientCa)[0]),
    };
  }

  async forClone(
    service: string,
    namespace: string,
    clientName: string,
  ): Promise<{ server: UploadPodCerts; source: CloneSourceCerts }> {
    const [serverSigner, clientCa, clientSigner, serverCa, config] = await Promise.all([
      loadSigner(this.kube, this.namespace, UploadServerSigner),
      loadBundle(this.kube, this.namespace, UploadServerClientBundle),
      loadSigner(this.kube, this.namespace, UploadServerClientSigner),
      loadBundle(this.kube, this.namespace, UploadServerBundle),
      this.certsConfig(),
    ]);
    checkInBundle(clientCa, clientSigner, UploadServerClientSigner);
    checkInBundle(serverCa, serverSigner, UploadServerSigner);
    const server = await this.issuePod(serverSigner, clientCa, config, service, namespace);
    const pair = await issueClientCert(
      clientSigner,
      clientName,
      [],
      validityFrom(new Date(this.clock.now()), config.client.duration),
    );
    return { server, source: { pair, serverCa } };
  }

  /** One run: the certificates (checked to be usable); returns ms until the next is due. */
  async syncOnce(): Promise<number> {
    const now = (): Date => new Date(this.clock.now());
    if (this.configFrom) this.config = await this.configFrom();
    const changes =
      this.mode === 'reconcile'
        ? await reconcileCertificates(this.kube, { namespace: this.namespace, config: this.config, now })
        : [];
    for (const c of changes)
      this.log.info(`certificate ${c.action}: ${c.kind} ${this.namespace}/${c.name}`, { reason: c.reason });
    // usable before onReady queues the PVCs waiting for them
    await loadSigner(this.kube, this.namespace, UploadServerSigner);
    await loadBundle(this.kube, this.namespace, UploadServerClientBundle);
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
