// The four CAs of cdi-upstream.md §6, their bundles and leaves, owned by the operator (src/certs does the work). The
// reconcile runs when something is due, not on every wake-up: at the earliest refresh time src/certs reports (a
// CA's or leaf's refresh, the end of a rotation's grace, an old CA's expiry), when CDI.spec.certConfig changes, when
// one of its Secrets or ConfigMaps was changed or deleted by someone else (drift), and at least once a minute.
//
// Rotation without downtime: a new CA goes into the bundle beside the old one (kept until it expires); the webhook
// configurations and the APIService get the new bundle in the same reconcile (render.ts reads it); the leaves keep
// the old CA's signature for a grace period (a tenth of the CA lifetime, 30 s to 5 min) so that every client holding
// the bundle has the new CA before a leaf signed by it is served. Servers re-read their certificate files (Secret
// volumes follow the Secret), so no pod restarts.
import { X509Certificate } from 'node:crypto';
import type { CDI } from '../api/index.ts';
import {
  BundleKey,
  CertDefinitions,
  reconcileCertificates,
  type CertChange,
  type CertDefinition,
} from '../certs/reconcile.ts';
import { certsConfigOf, leafGraceFor } from '../certs/rotation.ts';
import { controllerRef, type KubeClient, type KubeObject, type Logger } from '../kube/index.ts';
import { labelsOf } from '../deploy/common.ts';
import { MetricsCertSecret, MetricsService } from '../deploy/controller.ts';
import { Kinds } from './resources.ts';
import type { Owner } from './apply.ts';

export const ApiServerBundle = 'cdi-apiserver-signer-bundle';
export const MetricsBundle = 'cdi-metrics-server-signer-bundle';

/**
 * The certificates the operator owns: the four of cdi-upstream.md §6 and, ours (ADR 0040 §3), the controller's
 * metrics serving certificate with its own signer and bundle (what a Prometheus verifies the scrape against).
 */
export const OperatorCertDefinitions: readonly CertDefinition[] = [
  ...CertDefinitions,
  {
    signerSecret: 'cdi-metrics-server-signer',
    bundleConfigMap: MetricsBundle,
    target: { secret: MetricsCertSecret, service: MetricsService },
  },
];

/** Every Secret and ConfigMap of the certificates (kept by the cleanup, removed by the uninstall). */
export function certificateObjects(
  namespace: string,
): { kind: 'Secret' | 'ConfigMap'; name: string; namespace: string }[] {
  return OperatorCertDefinitions.flatMap((d) => [
    { kind: 'Secret' as const, name: d.signerSecret, namespace },
    { kind: 'ConfigMap' as const, name: d.bundleConfigMap, namespace },
    ...(d.target ? [{ kind: 'Secret' as const, name: d.target.secret, namespace }] : []),
  ]);
}

const MaxIntervalMs = 60_000;

export class OperatorCerts {
  private readonly kube: KubeClient;
  private readonly namespace: string;
  private readonly log: Logger;
  private readonly now: () => Date;
  private nextDue = 0;
  private lastConfig = '';
  private dirty = true;
  private readonly names: Set<string>;

  constructor(kube: KubeClient, namespace: string, log: Logger, now: () => Date = () => new Date()) {
    this.kube = kube;
    this.namespace = namespace;
    this.log = log;
    this.now = now;
    this.names = new Set(certificateObjects(namespace).map((o) => `${o.kind}/${o.name}`));
  }

  /** Marks the certificates for a reconcile when one of their objects changed (the owned cache's events). */
  observe(kind: string, obj: KubeObject): void {
    if (obj.metadata?.namespace === this.namespace && this.names.has(`${kind}/${obj.metadata?.name ?? ''}`))
      this.dirty = true;
  }

  /** Runs the certificate reconcile when due; returns the changes and how long until the next is due. */
  async sync(cr: Owner & Pick<CDI, 'spec'>): Promise<{ changes: CertChange[]; nextInMs: number }> {
    const config = certsConfigOf(cr);
    const key = JSON.stringify(config);
    const now = this.now().getTime();
    if (!this.dirty && key === this.lastConfig && now < this.nextDue)
      return { changes: [], nextInMs: this.nextDue - now };
    this.dirty = false;
    let next = now + MaxIntervalMs;
    const changes = await reconcileCertificates(this.kube, {
      namespace: this.namespace,
      config,
      definitions: OperatorCertDefinitions,
      now: this.now,
      labels: labelsOf(),
      ownerReferences: [controllerRef(cr, Kinds.CDI)],
      leafGraceMs: leafGraceFor(config.ca),
      schedule: (at) => {
        if (at.getTime() > now) next = Math.min(next, at.getTime());
      },
    });
    this.lastConfig = key;
    this.nextDue = next;
    for (const c of changes)
      this.log.info(`certificate ${c.action}: ${c.kind} ${c.name}`, { reason: c.reason });
    return { changes, nextInMs: Math.max(0, next - now) };
  }
}

/** The PEM bundle of a CA bundle ConfigMap in the cache, if it holds a parsable certificate. */
export function bundleOf(
  cm: (KubeObject & { data?: Record<string, string> }) | undefined,
): string | undefined {
  const pem = cm?.data?.[BundleKey];
  if (!pem) return undefined;
  try {
    new X509Certificate(pem);
    return pem;
  } catch {
    return undefined;
  }
}
