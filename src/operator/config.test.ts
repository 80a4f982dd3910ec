import { test } from 'node:test';
import assert from 'node:assert/strict';
import { operatorConfigFromEnv } from './config.ts';

const env = {
  OPERATOR_VERSION: 'v1',
  CONTROLLER_IMAGE: 'c',
  IMPORTER_IMAGE: 'i',
  APISERVER_IMAGE: 'a',
  UPLOAD_PROXY_IMAGE: 'p',
  UPLOAD_SERVER_IMAGE: 's',
};

void test("the operator reads upstream's environment and names what is missing", () => {
  const c = operatorConfigFromEnv({ ...env, POD_NAMESPACE: 'cdi-system' });
  assert.deepEqual(c, {
    namespace: 'cdi-system',
    version: 'v1',
    images: { controller: 'c', importer: 'i', apiServer: 'a', uploadProxy: 'p', uploadServer: 's' },
    pullPolicy: 'IfNotPresent',
    verbosity: '1',
    controllerEnv: {},
  });
  // the object-store endpoints are handed on to the controller; nothing else of the operator's environment is
  const withStores = operatorConfigFromEnv({ ...env, AWS_ENDPOINT_URL_S3: 'http://s3:9000', HOME: '/root' });
  assert.deepEqual(withStores.controllerEnv, { AWS_ENDPOINT_URL_S3: 'http://s3:9000' });
  assert.throws(() => operatorConfigFromEnv({ ...env, IMPORTER_IMAGE: '' }), /IMPORTER_IMAGE is not set/);
  assert.throws(
    () => operatorConfigFromEnv({ ...env, PULL_POLICY: 'Sometimes' }),
    /PULL_POLICY must be one of/,
  );
});
