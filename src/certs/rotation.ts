/**
 * When a CA or a leaf must be made again, and what a CA bundle keeps. The rules are library-go's certrotation, which
 * upstream's operator runs (pkg/operator/controller/certrotation.go), with CDI's {duration, renewBefore} settings
 * (CDI.spec.certConfig): refresh at notBefore + (duration - renewBefore), or at 80% of the validity, whichever comes
 * first; always when expired. A bundle holds the current CA first, then every older CA that has not expired, so
 * leaves signed by a previous CA stay trusted until they are replaced.
 */
import type { X509Certificate } from 'node:crypto';
import type { CDI } from '../api/index.ts';
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

const units: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/**
 * A Go time.Duration string ("48h", "1h30m", "90s", "1.5h", "10m0s") in milliseconds, as metav1.Duration accepts
 * it in CDI.spec.certConfig. Throws one line naming the field.
 */
export function parseGoDuration(text: string, field: string): number {
  const s = text.trim();
  if (s === '0') return 0;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let matched = 0;
  for (let m = re.exec(s); m; m = re.exec(s)) {
    total += Number(m[1]) * (units[m[2] as string] as number);
    matched = re.lastIndex;
  }
  if (s === '' || matched !== s.length)
    throw new Error(`${field}: "${text}" is not a duration; write it as Go does, e.g. 48h, 1h30m or 90s`);
  return total;
}

type Spec = { duration?: string; renewBefore?: string } | undefined;

/**
 * CDI.spec.certConfig → {duration, renewBefore} in ms, upstream's GetCertConfigWithDefaults: a part without both
 * fields gets the defaults. Throws one line naming the field.
 */
export function certsConfigOf(cr: Pick<CDI, 'spec'>): CertsConfig {
  const c = cr.spec?.certConfig;
  const one = (s: Spec, field: string, d: CertConfig): CertConfig =>
    s?.duration && s.renewBefore
      ? {
          duration: parseGoDuration(s.duration, `spec.certConfig.${field}.duration`),
          renewBefore: parseGoDuration(s.renewBefore, `spec.certConfig.${field}.renewBefore`),
        }
      : { ...d };
  return {
    ca: one(c?.ca, 'ca', DefaultCertConfig.ca),
    server: one(c?.server, 'server', DefaultCertConfig.server),
    client: one(c?.client, 'client', DefaultCertConfig.client),
  };
}

/** How long leaves keep a rotated CA's signature: a tenth of the CA lifetime, at least 30 s, at most 5 min. */
export const leafGraceFor = (ca: CertConfig): number => Math.min(300_000, Math.max(30_000, ca.duration / 10));
