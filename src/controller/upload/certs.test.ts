import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createCA } from '../../certs/pki.ts';
import { DefaultCertConfig, type CertsConfig } from '../../certs/rotation.ts';
import { uploadPodDeadline } from './certs.ts';

const S = 1000;
const MIN = 60 * S;
// whole seconds: certificates carry no milliseconds
const now = Math.floor(Date.now() / S) * S;
const ca = async (bornAgoMs: number, lifeMs: number) =>
  (
    await createCA('ca', {
      notBefore: new Date(now - bornAgoMs),
      notAfter: new Date(now - bornAgoMs + lifeMs),
    })
  ).cert;
// the e2e's short certConfig: CAs 4 min renewed 2 min before (so at half-life), server leaves 3 min renewed each minute
const short: CertsConfig = {
  ca: { duration: 4 * MIN, renewBefore: 2 * MIN },
  server: { duration: 3 * MIN, renewBefore: 2 * MIN },
  client: DefaultCertConfig.client,
};

void test('upstream: the shorter of the server and client leaf refresh intervals (12 h by default)', async () => {
  const c = await ca(MIN, 48 * 60 * MIN);
  assert.equal(uploadPodDeadline(now, DefaultCertConfig, c, c).getTime(), now + 12 * 60 * MIN);
  assert.equal(uploadPodDeadline(now, short, c, c).getTime(), now + MIN);
});

void test('a pod stops before the proxy can present a client certificate of a CA it was not given', async () => {
  // the client CA is refreshed 20 s from now; the proxy's client leaf keeps its signature for the 30 s grace after
  const clientCa = await ca(100 * S, 4 * MIN);
  const serverCa = await ca(0, 4 * MIN);
  assert.equal(uploadPodDeadline(now, short, serverCa, clientCa).getTime(), now + 50 * S);
  // with the 48 h defaults, a pod made 2 h before the client CA's rotation stops 5 min (the grace) after it
  const old = await ca(22 * 60 * MIN, 48 * 60 * MIN);
  const fresh = await ca(0, 48 * 60 * MIN);
  assert.equal(uploadPodDeadline(now, DefaultCertConfig, fresh, old).getTime(), now + 2 * 60 * MIN + 5 * MIN);
});

void test('a pod stops before the CA of its own certificate expires', async () => {
  const serverCa = await ca(3 * MIN + 30 * S, 4 * MIN);
  const clientCa = await ca(0, 4 * MIN);
  assert.equal(uploadPodDeadline(now, short, serverCa, clientCa).getTime(), now + 30 * S);
});

void test('a rotation the operator is late with (its moment under 10 s away or past) does not make pods churn', async () => {
  const late = await ca(150 * S, 4 * MIN); // refreshed 30 s ago + 30 s grace: now
  const serverCa = await ca(0, 4 * MIN);
  assert.equal(uploadPodDeadline(now, short, serverCa, late).getTime(), now + MIN);
  assert.equal(uploadPodDeadline(now, short, serverCa, undefined).getTime(), now + MIN);
});
