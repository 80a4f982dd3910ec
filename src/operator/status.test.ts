import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CDICondition,
  deploymentNotReady,
  markDeploying,
  markHealthy,
  markUpgrading,
  readiness,
} from './status.ts';

const now = new Date('2026-01-01T00:00:00Z');

void test('conditions follow the sdk: deploying, healthy, upgrading; cr_ready 1 only when Available', () => {
  const deploying = markDeploying({}, now, 'DeployStarted', 'Started Deployment');
  const c = (s: typeof deploying, t: string) => s.conditions?.find((x) => x.type === t);
  assert.equal(c(deploying, CDICondition.Available)?.status, 'False');
  assert.equal(c(deploying, CDICondition.Progressing)?.reason, 'DeployStarted');
  assert.equal(readiness(deploying), undefined, 'progressing: the gauge keeps its value');
  const healthy = markHealthy(deploying, now, 'DeployCompleted', 'Deployment Completed');
  assert.equal(c(healthy, CDICondition.Available)?.reason, 'DeployCompleted');
  assert.equal(c(healthy, CDICondition.Progressing)?.status, 'False');
  assert.equal(c(healthy, CDICondition.Progressing)?.reason, undefined);
  assert.equal(readiness(healthy), 1);
  const up = markUpgrading(healthy, now, 'UpgradeStarted', 'Started upgrade to version v2');
  assert.deepEqual(
    up.conditions?.map((x) => [x.type, x.status]),
    [
      ['Available', 'True'],
      ['Progressing', 'True'],
      ['Degraded', 'True'],
    ],
  );
  assert.equal(readiness({}), 0);
  assert.strictEqual(
    markHealthy(healthy, now, 'DeployCompleted', 'Deployment Completed'),
    healthy,
    'no change: same object',
  );
});

void test('a Deployment is ready when its current spec is observed and every replica is updated and ready', () => {
  const d = (gen: number, observed: number, replicas: number, ready: number, updated: number) => ({
    metadata: { generation: gen },
    spec: { replicas: 1 },
    status: { observedGeneration: observed, replicas, readyReplicas: ready, updatedReplicas: updated },
  });
  assert.equal(deploymentNotReady(d(2, 2, 1, 1, 1), 'x'), undefined);
  assert.match(deploymentNotReady(d(3, 2, 1, 1, 1), 'x') ?? '', /not rolled out/);
  assert.match(deploymentNotReady(d(2, 2, 2, 1, 1), 'x') ?? '', /1\/1 replicas ready, 1 updated/);
  assert.match(deploymentNotReady(d(2, 2, 1, 0, 1), 'x') ?? '', /0\/1 replicas ready/);
  assert.match(deploymentNotReady(undefined, 'x') ?? '', /does not exist/);
});
