/**
 * When a CA or a leaf must be made again, and what a CA bundle keeps. The rules are library-go's certrotation, which
 * upstream's operator runs (pkg/operator/controller/certrotation.go), with CDI's {duration, renewBefore} settings
 * (CDI.spec.certConfig): refresh at notBefore + (duration - renewBefore), or at 80% of the validity, whichever comes
 * first; always when expired. A bundle holds the current CA first, then every older CA that has not expired, so
 * leaves signed by a previous CA stay trusted until they are replaced.
 */
import type { X509Certificate } from 'node:crypto';
import { commonName } from './pki.ts';

/** {duration, renewBefore} in milliseconds. */
export interface CertConfig {
  duration: number;
  renewBefore: number;
}

const HOUR = 3600_000;

/** Upstream defaults (pkg/operator/resources/cert/factory.go). */
export const DefaultCertConfig = {
  ca: { duration: 48 * HOUR, renewBefore: 24 * HOUR },
  server: { duration: 24 * HOUR, renewBefore: 12 * HOUR },
  client: { duration: 24 * HOUR, renewBefore: 12 * HOUR },
} as const satisfies Record<string, CertConfig>;

export interface CertsConfig {
  ca: CertConfig;
  server: CertConfig;
  client: CertConfig;
}

/** A {duration, renewBefore} that cannot work (renewing before it is issued) is refused with a message. */
export function checkCertConfig(what: string, c: CertConfig): void {
  if (!(c.duration > 0)) throw new Error(`${what}: duration must be positive`);
  if (!(c.renewBefore >= 0) || c.renewBefore >= c.duration) {
    throw new Error(
      `${what}: renewBefore (${c.renewBefore} ms) must be less than duration (${c.duration} ms)`,
    );
  }
}

/** When a certificate of this config issued at `notBefore` should be replaced. */
export function refreshAt(cert: X509Certificate, config: CertConfig): Date {
  const notBefore = new Date(cert.validFrom).getTime();
  const notAfter = new Date(cert.validTo).getTime();
  const byConfig = notBefore + (config.duration - config.renewBefore);
  const at80 = notAfter - (notAfter - notBefore) / 5;
  return new Date(Math.min(byConfig, at80));
}

/** Why `cert` must be replaced now, or undefined when it is still good. */
export function renewalReason(
  cert: X509Certificate | undefined,
  config: CertConfig,
  now: Date,
): string | undefined {
  if (!cert) return 'missing';
  const notAfter = new Date(cert.validTo);
  if (now >= notAfter) return `expired at ${notAfter.toISOString()}`;
  const at = refreshAt(cert, config);
  if (now >= at) return `past its refresh time ${at.toISOString()}`;
  return undefined;
}

/**
 * Why a leaf must be re-issued besides its own age: it was signed by a CA that is no longer the current one (the
 * CA was rotated), or by one that is not in the bundle at all.
 */
export function leafSignerReason(
  leaf: X509Certificate,
  current: X509Certificate,
  bundle: X509Certificate[],
): string | undefined {
  if (!bundle.some((ca) => leaf.checkIssued(ca) && leaf.verify(ca.publicKey))) {
    return `issuer ${commonName(leaf.issuer) ?? leaf.issuer} is not in the CA bundle`;
  }
  if (!(leaf.checkIssued(current) && leaf.verify(current.publicKey))) {
    return `signed by ${commonName(leaf.issuer) ?? leaf.issuer}, not by the current CA ${commonName(current.subject) ?? ''}`;
  }
  return undefined;
}

/** The bundle after `current` became the CA: current first, then the unexpired others, no duplicates. */
export function mergeBundle(
  existing: X509Certificate[],
  current: X509Certificate,
  now: Date,
): X509Certificate[] {
  const out: X509Certificate[] = [current];
  const seen = new Set([current.fingerprint256]);
  for (const c of existing) {
    if (seen.has(c.fingerprint256)) continue;
    if (new Date(c.validTo) <= now) continue;
    seen.add(c.fingerprint256);
    out.push(c);
  }
  return out;
}

/** PEM text of certificates, one after the other. */
export function bundlePem(certs: X509Certificate[]): string {
  return certs.map((c) => c.toString().trim() + '\n').join('');
}
