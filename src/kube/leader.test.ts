import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeClient } from './client.ts';
import { LeaderElector } from './leader.ts';

// A real loopback HTTP server plays an API server that grants the lease and then hangs, which a real
// kube-apiserver does not do on demand. The leader must step down after renewDeadline even though the
// client's own request timeout is an hour.
void test('a leader whose renewals hang steps down after renewDeadline', async () => {
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
  const client = new KubeClient(kc, { requestTimeoutMs: 3_600_000 });
  const log: string[] = [];
  const stop = new AbortController();
  let stepDown: () => void = () => {};
  const steppedDown = new Promise<void>((r) => (stepDown = r));
  const elector = new LeaderElector(client, {
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
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise(
      (_, reject) => (timer = setTimeout(() => reject(new Error('the leader never stepped down')), 20_000)),
    );
    await Promise.race([steppedDown, limit]).finally(() => clearTimeout(timer));
    assert.deepEqual(log, ['leads', 'stops']);
    assert.equal(elector.isLeader, false);
  } finally {
    stop.abort();
    await running;
    for (const r of hung) r.destroy();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
});
