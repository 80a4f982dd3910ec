import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import {
  canClone,
  checkClonePayload,
  CloneTokenIssuer,
  CloneTokenLeewayMs,
  CloneTokenLifetimeMs,
  clonePayload,
  extendCloneToken,
  ExtendedCloneTokenIssuer,
  ExtendedCloneTokenLifetimeMs,
  rebindCloneToken,
  serviceAccountSubject,
  verifyCloneGrant,
  type CloneTokens,
  type ResourceAttributes,
} from './clone.ts';
import { TokenError, TokenGenerator, TokenValidator } from './token.ts';

const key = generateKeyPairSync('rsa', { modulusLength: 2048 });
const t0 = Date.UTC(2026, 11, 1);
let now = t0;
const clock = (): number => now;
const short = new TokenGenerator(CloneTokenIssuer, key.privateKey, CloneTokenLifetimeMs, clock);
const tokens: CloneTokens = {
  short: new TokenValidator(CloneTokenIssuer, key.publicKey, CloneTokenLeewayMs, clock),
  long: new TokenValidator(ExtendedCloneTokenIssuer, key.publicKey, CloneTokenLeewayMs, clock),
  longGenerator: new TokenGenerator(
    ExtendedCloneTokenIssuer,
    key.privateKey,
    ExtendedCloneTokenLifetimeMs,
    clock,
  ),
};
const golden = { kind: 'pvc' as const, namespace: 'golden', name: 'fedora' };
const target = { namespace: 'alice', name: 'vm-disk' };

void describe('clone tokens', () => {
  void it("signs upstream's payload: Clone, the source, its resource, the target in params", async () => {
    now = t0;
    const tok = await short.generate(clonePayload(golden, target));
    const p = decodeJwt(tok);
    assert.equal(p.iss, 'cdi-apiserver');
    assert.equal(p.exp, t0 / 1000 + 300);
    assert.deepEqual(
      {
        operation: p.operation,
        name: p.name,
        namespace: p.namespace,
        resource: p.resource,
        params: p.params,
      },
      {
        operation: 'Clone',
        name: 'fedora',
        namespace: 'golden',
        resource: { group: '', version: 'v1', resource: 'persistentvolumeclaims' },
        params: { targetNamespace: 'alice', targetName: 'vm-disk' },
      },
    );
    const snap = clonePayload({ kind: 'snapshot', namespace: 'golden', name: 's' }, target);
    assert.deepEqual(snap.resource, {
      group: 'snapshot.storage.k8s.io',
      version: 'v1',
      resource: 'volumesnapshots',
    });
  });

  void it('a token grants only its own clone, and says what differs', () => {
    const p = clonePayload(golden, target);
    checkClonePayload(p, golden, target);
    assert.throws(
      () => checkClonePayload(p, { ...golden, name: 'windows' }, target),
      /names the source persistentvolumeclaims golden\/fedora, not persistentvolumeclaims golden\/windows/,
    );
    assert.throws(
      () => checkClonePayload(p, golden, { namespace: 'bob', name: 'vm-disk' }),
      /for the target alice\/vm-disk, not bob\/vm-disk/,
    );
    assert.throws(() => checkClonePayload(p, { ...golden, kind: 'snapshot' }, target), /not volumesnapshots/);
    assert.throws(
      () => checkClonePayload({ ...p, operation: 'Upload' }, golden, target),
      /for Upload, not Clone/,
    );
    const bound = { ...p, params: { ...p.params, uid: 'u1' } };
    checkClonePayload(bound, golden, { ...target, uid: 'u1' });
    assert.throws(
      () => checkClonePayload(bound, golden, { ...target, uid: 'u2' }),
      /another object of that name/,
    );
  });

  void it('the long-term token: from a valid short one, 10 years, bound to the uid; re-bound to the PVC', async () => {
    now = t0;
    const tok = await short.generate(clonePayload(golden, target));
    now = t0 + 60_000;
    const long = await extendCloneToken(tokens, tok, golden, { ...target, uid: 'dv-uid' });
    const p = decodeJwt(long);
    assert.equal(p.iss, 'cdi-deployment');
    assert.equal(p.exp! - p.iat!, 10 * 365 * 24 * 3600);
    assert.deepEqual(p.params, { targetNamespace: 'alice', targetName: 'vm-disk', uid: 'dv-uid' });
    // a year later the short one is long gone, the long one still works
    now = t0 + 365 * 24 * 3600_000;
    await verifyCloneGrant(tokens, { short: tok, long }, golden, { ...target, uid: 'dv-uid' });
    await assert.rejects(verifyCloneGrant(tokens, { short: tok }, golden, target), /expired/);
    const pvcToken = await rebindCloneToken(
      tokens,
      long,
      golden,
      { ...target, uid: 'dv-uid' },
      { ...target, uid: 'pvc-uid' },
    );
    await verifyCloneGrant(tokens, { long: pvcToken }, golden, { ...target, uid: 'pvc-uid' });
    await assert.rejects(
      verifyCloneGrant(tokens, { long: pvcToken }, golden, { ...target, uid: 'dv-uid' }),
      TokenError,
    );
  });

  void it('an expired or forged short token is not extended', async () => {
    now = t0;
    const tok = await short.generate(clonePayload(golden, target));
    now = t0 + 6 * 60_000;
    await assert.rejects(extendCloneToken(tokens, tok, golden, { ...target, uid: 'x' }), /expired/);
    const otherKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const forged = await new TokenGenerator(
      CloneTokenIssuer,
      otherKey.privateKey,
      CloneTokenLifetimeMs,
      clock,
    ).generate(clonePayload(golden, target));
    await assert.rejects(
      extendCloneToken(tokens, forged, golden, { ...target, uid: 'x' }),
      /signature does not verify/,
    );
    // a long-term token is not a short one (issuer cdi-deployment)
    const long = await tokens.longGenerator.generate(clonePayload(golden, target));
    await assert.rejects(extendCloneToken(tokens, long, golden, { ...target, uid: 'x' }), /iss/);
  });

  void it('a clone within one namespace needs no token; across namespaces one is required', async () => {
    await verifyCloneGrant(tokens, {}, { ...golden, namespace: 'alice' }, target);
    await assert.rejects(
      verifyCloneGrant(tokens, {}, golden, target),
      /needs a clone token, and alice\/vm-disk has none/,
    );
  });
});

void describe('the clone permission rule', () => {
  /** A SubjectAccessReview stand-in answering from a list of granted "resource[/sub]@namespace" (unit level). */
  const grants = (list: string[]) => {
    const asked: string[] = [];
    const review = (_who: unknown, a: ResourceAttributes): Promise<boolean> => {
      const k = `${a.resource}${a.subresource ? `/${a.subresource}` : ''}@${a.namespace}`;
      asked.push(k);
      return Promise.resolve(list.includes(k));
    };
    return { review, asked };
  };

  void it('the same namespace needs no review', async () => {
    const g = grants([]);
    assert.deepEqual(await canClone(g.review, { user: 'alice' }, golden, 'golden'), {
      allowed: true,
      reason: '',
    });
    assert.deepEqual(g.asked, []);
  });

  void it('PVC: datavolumes/source, else pods, in the source namespace', async () => {
    assert.equal(
      (await canClone(grants(['datavolumes/source@golden']).review, { user: 'a' }, golden, 'alice')).allowed,
      true,
    );
    assert.equal(
      (await canClone(grants(['pods@golden']).review, { user: 'a' }, golden, 'alice')).allowed,
      true,
    );
    const d = await canClone(
      grants(['pods@alice', 'datavolumes/source@alice']).review,
      { user: 'alice' },
      golden,
      'alice',
    );
    assert.equal(d.allowed, false);
    assert.match(
      d.reason,
      /^User alice has insufficient permissions in clone source namespace golden: cloning PersistentVolumeClaim golden\/fedora needs "create" on "datavolumes\/source" \(group cdi.kubevirt.io\) or "create" on "pods" in golden; .*RoleBinding to the ClusterRole cdi.kubevirt.io:clone-sourcer/,
    );
  });

  void it('snapshot: datavolumes/source, else both pods and persistentvolumeclaims', async () => {
    const snap = { kind: 'snapshot' as const, namespace: 'golden', name: 's' };
    assert.equal(
      (await canClone(grants(['datavolumes/source@golden']).review, { user: 'a' }, snap, 'alice')).allowed,
      true,
    );
    assert.equal(
      (await canClone(grants(['pods@golden']).review, { user: 'a' }, snap, 'alice')).allowed,
      false,
    );
    assert.equal(
      (
        await canClone(
          grants(['pods@golden', 'persistentvolumeclaims@golden']).review,
          { user: 'a' },
          snap,
          'alice',
        )
      ).allowed,
      true,
    );
    assert.match(
      (await canClone(grants([]).review, { user: 'a' }, snap, 'alice')).reason,
      /both "pods" and "persistentvolumeclaims"/,
    );
  });

  void it('a service account is reviewed as its user and groups', () => {
    assert.deepEqual(serviceAccountSubject('alice', 'cron'), {
      user: 'system:serviceaccount:alice:cron',
      groups: ['system:serviceaccounts', 'system:serviceaccounts:alice', 'system:authenticated'],
    });
  });
});
