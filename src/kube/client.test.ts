import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeClient } from './client.ts';
import { ApiError, isConflict } from './errors.ts';
import { Resources } from './types.ts';

/** A kubeconfig for a plain-HTTP server on loopback. */
function loopbackKubeConfig(port: number): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: 'u' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return kc;
}

// A real HTTP server on loopback standing in for an API server that misbehaves in ways a real one rarely
// does on demand (never answering, answering with a non-Status body).
async function withServer(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  fn: (
    client: KubeClient,
    seen: { method?: string; url?: string; contentType?: string; body: string }[],
  ) => Promise<void>,
  requestTimeoutMs = 30_000,
): Promise<void> {
  const seen: { method?: string; url?: string; contentType?: string; body: string }[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      seen.push({ method: req.method, url: req.url, contentType: req.headers['content-type'], body });
      handler(req, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  const kc = loopbackKubeConfig(port);
  try {
    await fn(new KubeClient(kc, { requestTimeoutMs }), seen);
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
}

void test('a request that gets no answer fails with a clear message after requestTimeoutMs', async () => {
  await withServer(
    () => {
      /* never answers */
    },
    async (client) => {
      await assert.rejects(
        client.get(Resources.Pod, 'p', 'ns'),
        /^Error: GET \/api\/v1\/namespaces\/ns\/pods\/p: no answer from the API server within 300 ms$/,
      );
    },
    300,
  );
});

void test('merge patch, JSON patch, apply and a status merge patch use their content types and paths', async () => {
  await withServer(
    (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"metadata":{"name":"d"}}');
    },
    async (client, seen) => {
      await client.mergePatch(Resources.DataVolume, 'd', { spec: {} }, { namespace: 'ns' });
      await client.jsonPatch(Resources.DataVolume, 'd', [{ op: 'remove', path: '/x' }], { namespace: 'ns' });
      await client.apply(
        Resources.DataVolume,
        { metadata: { name: 'd', namespace: 'ns' } },
        { fieldManager: 'cdi', force: true },
      );
      await client.mergePatch(
        Resources.DataVolume,
        'd',
        { status: { phase: 'Pending' } },
        { namespace: 'ns', subresource: 'status' },
      );
      assert.deepEqual(
        seen.map((s) => [s.method, s.url, s.contentType]),
        [
          [
            'PATCH',
            '/apis/cdi.kubevirt.io/v1beta1/namespaces/ns/datavolumes/d',
            'application/merge-patch+json',
          ],
          [
            'PATCH',
            '/apis/cdi.kubevirt.io/v1beta1/namespaces/ns/datavolumes/d',
            'application/json-patch+json',
          ],
          [
            'PATCH',
            '/apis/cdi.kubevirt.io/v1beta1/namespaces/ns/datavolumes/d?fieldManager=cdi&force=true',
            'application/apply-patch+yaml',
          ],
          [
            'PATCH',
            '/apis/cdi.kubevirt.io/v1beta1/namespaces/ns/datavolumes/d/status',
            'application/merge-patch+json',
          ],
        ],
      );
      assert.deepEqual(JSON.parse(seen[2]!.body), {
        apiVersion: 'cdi.kubevirt.io/v1beta1',
        kind: 'DataVolume',
        metadata: { name: 'd', namespace: 'ns' },
      });
      assert.deepEqual(JSON.parse(seen[3]!.body), { status: { phase: 'Pending' } });
    },
  );
});

void test('an error body that is not a Status still gives code and text', async () => {
  await withServer(
    (_req, res) => {
      res.writeHead(409, { 'content-type': 'text/plain' }).end('conflict, says the proxy');
    },
    async (client) => {
      await assert.rejects(client.get(Resources.Pod, 'p', 'ns'), (e: unknown) => {
        assert.ok(e instanceof ApiError);
        assert.equal(e.code, 409);
        assert.ok(isConflict(e));
        assert.match(e.message, /conflict, says the proxy/);
        return true;
      });
    },
  );
});

void test('requests share one connection pool (no new connection per request)', async () => {
  let connections = 0;
  const server = createServer((_req, res) => {
    res.setHeader('Content-Type', 'application/json');
    res.end('{"kind":"Namespace","apiVersion":"v1","metadata":{"name":"x"}}');
  });
  server.on('connection', () => connections++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  const kc = loopbackKubeConfig(port);
  const client = new KubeClient(kc);
  try {
    for (let i = 0; i < 20; i++) await client.get(Resources.Namespace, 'x');
    // sequential requests over keep-alive reuse a pooled connection (undici may open a second one while the
    // first is being released); a pool per request opened one connection per request, twenty here
    assert.ok(connections <= 2, `${connections} connections for 20 sequential requests`);
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
});

void test('onResponse sees every request with its status code, and "error" when no answer came', async () => {
  await withServer(
    (req, res) => {
      if (req.url?.includes('missing')) return void res.writeHead(404).end('{}');
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"metadata":{"name":"x"}}');
    },
    async (client) => {
      const calls: string[] = [];
      client.onResponse = (method, code) => calls.push(`${method} ${code}`);
      await client.get(Resources.ConfigMap, 'x', 'ns');
      assert.equal(await client.getOrUndefined(Resources.ConfigMap, 'missing', 'ns'), undefined);
      await client.delete(Resources.ConfigMap, 'x', { namespace: 'ns' });
      assert.deepEqual(calls, ['GET 200', 'GET 404', 'DELETE 200']);
    },
  );
  const closed = new KubeClient(loopbackKubeConfig(1));
  const calls: string[] = [];
  closed.onResponse = (method, code) => calls.push(`${method} ${code}`);
  await assert.rejects(closed.get(Resources.ConfigMap, 'x', 'ns'));
  assert.deepEqual(calls, ['GET error']);
});
