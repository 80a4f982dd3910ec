import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startHealthServer } from './server.ts';
import { bearerToken } from './auth.ts';

void test('bearer tokens: the scheme in any case, nothing else counts', () => {
  assert.equal(bearerToken({ authorization: 'Bearer abc.def' }), 'abc.def');
  assert.equal(bearerToken({ authorization: 'bearer   abc ' }), 'abc');
  assert.equal(bearerToken({ authorization: 'Basic YTpi' }), undefined);
  assert.equal(bearerToken({ authorization: 'Bearer' }), undefined);
  assert.equal(bearerToken({ authorization: 'Bearer a b' }), undefined);
  assert.equal(bearerToken({}), undefined);
});

void test('/healthz unless something is wrong, /readyz while ready, nothing else', async () => {
  let ready = false;
  let problems: string[] = [];
  const h = await startHealthServer({
    ready: () => ready,
    problems: () => problems,
    port: 0,
    host: '127.0.0.1',
  });
  const status = (path: string): Promise<number> =>
    new Promise((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port: h.port, path, agent: false }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        })
        .on('error', reject);
    });
  try {
    assert.equal(await status('/healthz'), 200);
    assert.equal(await status('/readyz'), 503);
    ready = true;
    assert.equal(await status('/readyz'), 200);
    assert.equal(await status('/metrics'), 404);
    problems = ['informer pods: watch failing for 3m'];
    assert.equal(await status('/healthz'), 500);
  } finally {
    await h.close();
  }
});
