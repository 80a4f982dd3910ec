import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createCA, issueServerCert, validityFrom } from './pki.ts';
import {
  checkCertConfig,
  DefaultCertConfig,
  leafSignerReason,
  mergeBundle,
  parseGoDuration,
  refreshAt,
  renewalReason,
} from './rotation.ts';
import { goDuration } from './reconcile.ts';

const HOUR = 3600_000;
const t0 = new Date('2026-03-01T00:00:00Z');
const at = (h: number): Date => new Date(t0.getTime() + h * HOUR);

void describe('rotation', () => {
  void it('renews a CA at notBefore + (duration - renewBefore), and when expired', async () => {
    const ca = await createCA('ca', validityFrom(t0, DefaultCertConfig.ca.duration));
    assert.equal(renewalReason(ca.cert, DefaultCertConfig.ca, at(23)), undefined);
    assert.match(renewalReason(ca.cert, DefaultCertConfig.ca, at(24)) ?? '', /past its refresh time/);
    assert.match(renewalReason(ca.cert, DefaultCertConfig.ca, at(49)) ?? '', /expired/);
    assert.equal(renewalReason(undefined, DefaultCertConfig.ca, t0), 'missing');
  });

  void it('renews at 80% of the validity when renewBefore is small', async () => {
    const c = await createCA('ca', validityFrom(t0, 10 * HOUR));
    const cfg = { duration: 10 * HOUR, renewBefore: HOUR };
    assert.equal(
      refreshAt(c.cert, cfg).getTime(),
      new Date(c.cert.validTo).getTime() - (10 * HOUR + 1000) / 5,
    );
    assert.equal(renewalReason(c.cert, cfg, at(7.9)), undefined);
    assert.ok(renewalReason(c.cert, cfg, at(8.1)));
  });

  void it('keeps older unexpired CAs in the bundle, current first, and drops expired ones', async () => {
    const old = await createCA('old', validityFrom(t0, 48 * HOUR));
    const cur = await createCA('cur', validityFrom(at(24), 48 * HOUR));
    const b1 = mergeBundle([old.cert], cur.cert, at(24));
    assert.deepEqual(
      b1.map((c) => c.subject),
      ['CN=cur', 'CN=old'],
    );
    assert.deepEqual(
      mergeBundle([cur.cert, old.cert, cur.cert], cur.cert, at(49)).map((c) => c.subject),
      ['CN=cur'],
    );
  });

  void it('re-issues a leaf signed by a rotated CA, and one whose CA left the bundle', async () => {
    const old = await createCA('old', validityFrom(t0, 48 * HOUR));
    const cur = await createCA('cur', validityFrom(at(24), 48 * HOUR));
    const { X509Certificate } = await import('node:crypto');
    const leaf = new X509Certificate(
      (await issueServerCert(old, ['svc'], validityFrom(t0, 24 * HOUR))).certPem,
    );
    assert.equal(leafSignerReason(leaf, old.cert, [old.cert]), undefined);
    assert.match(leafSignerReason(leaf, cur.cert, [cur.cert, old.cert]) ?? '', /not by the current CA/);
    assert.match(leafSignerReason(leaf, cur.cert, [cur.cert]) ?? '', /not in the CA bundle/);
  });

  void it('refuses a config that renews before it issues', () => {
    assert.throws(
      () => checkCertConfig('certConfig.server', { duration: HOUR, renewBefore: 2 * HOUR }),
      /must be less than duration/,
    );
    assert.doesNotThrow(() => checkCertConfig('ok', DefaultCertConfig.server));
  });

  void it('writes durations as Go does', () => {
    assert.equal(goDuration(48 * HOUR), '48h0m0s');
    assert.equal(goDuration(90_000), '1m30s');
    assert.equal(goDuration(5000), '5s');
  });
});

void it('Go durations as metav1.Duration takes them', () => {
  assert.equal(parseGoDuration('48h', 'f'), 48 * 3600_000);
  assert.equal(parseGoDuration('1h30m', 'f'), 5400_000);
  assert.equal(parseGoDuration('10m0s', 'f'), 600_000);
  assert.equal(parseGoDuration('1.5h', 'f'), 5400_000);
  assert.equal(parseGoDuration('250ms', 'f'), 250);
  assert.throws(
    () => parseGoDuration('2 days', 'certConfig.ca.duration'),
    /certConfig.ca.duration: "2 days" is not a duration/,
  );
  assert.throws(() => parseGoDuration('', 'f'), /not a duration/);
});
