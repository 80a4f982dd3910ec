import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeClient } from './client.ts';
import { realClock, type Clock } from './clock.ts';
import { LeaderElector } from './leader.ts';

// A real loopback HTTP server plays an API server that grants the lease and then hangs, which a real
// kube-apiserver does not do on demand.
async function grantThenHang(): Promise<{ client: KubeClient; close: () => Promise<void> }> {
  let hang = false;
  const hung: ServerResponse[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      if (hang) return void hung.push(res);
      if (req.method === 'GET') {
        res
          .writeHead(404, { 'content-type': 'application/json' })
          .end('{"kind":"Status","code":404,"reason":"NotFound"}');
      } else {
        const lease = JSON.parse(body) as { metadata: Record<string, unknown> };
        lease.metadata.resourceVersion = '1';
        hang = true; // every later request hangs
        res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify(lease));
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [
      {
        name: 'c',
        server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        skipTLSVerify: true,
      },
    ],
    users: [{ name: 'u' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return {
    // the client's own request timeout is an hour: only the elector's renewDeadline can end a renewal
    client: new KubeClient(kc, { requestTimeoutMs: 3_600_000 }),
    close: async () => {
      for (const r of hung) r.destroy();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

const within = <T>(p: Promise<T>, ms: number, what: string): Promise<T> => {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(what)), ms)));
  return Promise.race([p, limit]).finally(() => clearTimeout(timer));
};

void test('a leader whose renewals hang steps down after renewDeadline', async () => {
  const api = await grantThenHang();
  const log: string[] = [];
  const stop = new AbortController();
  let stepDown: () => void = () => {};
  const steppedDown = new Promise<void>((r) => (stepDown = r));
  const elector = new LeaderElector(api.client, {
    namespace: 'ns',
    name: 'l',
    identity: 'me',
    leaseDurationMs: 1500,
    renewDeadlineMs: 1000,
    retryPeriodMs: 200,
    onStartedLeading: (lost) => {
      log.push('leads');
      lost.addEventListener('abort', () => {
        log.push('stops');
        stepDown();
      });
    },
  });
  const running = elector.run(stop.signal);
  try {
    await within(steppedDown, 20_000, 'the leader never stepped down');
    assert.deepEqual(log, ['leads', 'stops']);
    assert.equal(elector.isLeader, false);
  } finally {
    stop.abort();
    await running;
    await api.close();
  }
});

// /healthz (client-go's HealthzAdaptor): a process that still believes it leads but has not renewed for longer than
// leaseDuration + tolerance (its event loop was stopped: SIGSTOP, a starved CPU) answers unhealthy, naming the lease,
// so that the kubelet restarts it. The clock jumps as a stopped process sees it on waking.
void test('/healthz: a leader that has not renewed for leaseDuration + tolerance is unhealthy, a candidate is not', async () => {
  const api = await grantThenHang();
  let jump = 0;
  const clock: Clock = {
    now: () => realClock.now() + jump,
    setTimer: (fn, ms) => realClock.setTimer(fn, ms),
  };
  const stop = new AbortController();
  let leads: () => void = () => {};
  const leading = new Promise<void>((r) => (leads = r));
  const elector = new LeaderElector(api.client, {
    namespace: 'ns',
    name: 'l',
    identity: 'me',
    leaseDurationMs: 15_000,
    renewDeadlineMs: 10_000,
    retryPeriodMs: 2_000,
    clock,
    onStartedLeading: () => leads(),
  });
  assert.deepEqual(elector.health(), { healthy: true }, 'a candidate is healthy');
  const running = elector.run(stop.signal);
  try {
    await within(leading, 20_000, 'never led');
    assert.deepEqual(elector.health(), { healthy: true }, 'just renewed');
    jump = 15_000 + 20_000 - 1_000; // within leaseDuration + tolerance
    assert.deepEqual(elector.health(), { healthy: true });
    jump = 15_000 + 20_000 + 1_000;
    assert.deepEqual(elector.health(), {
      healthy: false,
      reason: 'leader election: lease ns/l not renewed for 36 s',
    });
  } finally {
    stop.abort();
    await running;
    await api.close();
  }
});
