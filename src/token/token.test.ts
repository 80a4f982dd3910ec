import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import { decodeProtectedHeader, decodeJwt } from 'jose';
import { TokenError, TokenGenerator, TokenValidator, uploadPayload, UploadTokenIssuer } from './token.ts';

const key = generateKeyPairSync('rsa', { modulusLength: 2048 });
const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
const t0 = Date.UTC(2026, 2, 1);

void describe('tokens', () => {
  void it('signs PS256 with iss, iat, nbf, exp (5 min) and the upstream payload', async () => {
    const g = new TokenGenerator(UploadTokenIssuer, key.privateKey, 5 * 60_000, () => t0);
    const tok = await g.generate(uploadPayload('ns', 'disk'));
    assert.deepEqual(decodeProtectedHeader(tok), { alg: 'PS256' });
    assert.deepEqual(decodeJwt(tok), {
      operation: 'Upload',
      name: 'disk',
      namespace: 'ns',
      resource: { group: '', version: 'v1', resource: 'persistentvolumeclaims' },
      iss: 'cdi-apiserver',
      iat: t0 / 1000,
      nbf: t0 / 1000,
      exp: t0 / 1000 + 300,
    });
    const v = new TokenValidator(UploadTokenIssuer, key.publicKey, 10_000, () => t0 + 60_000);
    assert.deepEqual(await v.validate(tok), uploadPayload('ns', 'disk'));
  });

  void it('refuses a forged, expired, not-yet-valid or foreign-issuer token with a reason', async () => {
    const good = new TokenGenerator(UploadTokenIssuer, key.privateKey, 300_000, () => t0);
    const forged = new TokenGenerator(UploadTokenIssuer, other.privateKey, 300_000, () => t0);
    const foreign = new TokenGenerator('cdi-deployment', key.privateKey, 300_000, () => t0);
    const at = (ms: number): TokenValidator =>
      new TokenValidator(UploadTokenIssuer, key.publicKey, 10_000, () => t0 + ms);
    const p = uploadPayload('ns', 'disk');
    await assert.rejects(at(0).validate(await forged.generate(p)), /signature does not verify/);
    await assert.rejects(
      at(311_000).validate(await good.generate(p)),
      (e) => e instanceof TokenError && /expired/.test(e.message),
    );
    // inside the 10 s leeway: still good
    assert.equal((await at(309_000).validate(await good.generate(p))).name, 'disk');
    await assert.rejects(at(-11_000).validate(await good.generate(p)), /nbf claim/);
    await assert.rejects(at(0).validate(await foreign.generate(p)), /iss claim/);
    await assert.rejects(at(0).validate('not.a.token'), /not a valid CDI token/);
    // alg none / HS256 never accepted
    const parts = (await good.generate(p)).split('.');
    const none = Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url');
    await assert.rejects(at(0).validate(`${none}.${parts[1]}.`), TokenError);
  });
});
