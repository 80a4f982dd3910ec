/**
 * The signer against AWS's published vectors: the Signature Version 4 test suite (credentials AKIDEXAMPLE, region
 * us-east-1, service "service", 2015-08-30T12:36:00Z; the requests and signatures as the suite gives them) and the
 * S3 documentation's "GET Object" example (the first 10 bytes of examplebucket/test.txt). The real S3 server's
 * check of our signatures is in test/importer/sources/s3.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { amzDate, EMPTY_SHA256, encodePath, sign, type SignInput } from './sigv4.ts';

const SUITE = {
  credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' },
  region: 'us-east-1',
  service: 'service',
  date: new Date('2015-08-30T12:36:00Z'),
  host: 'example.amazonaws.com',
  method: 'GET',
  payloadHash: EMPTY_SHA256,
};
const UNRESERVED = '-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

const CASES: {
  name: string;
  request: Partial<SignInput>;
  signedHeaders?: string;
  signature: string;
}[] = [
  {
    name: 'get-vanilla',
    request: { path: '/' },
    signature: '5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31',
  },
  {
    name: 'get-vanilla-query-order-key-case',
    request: {
      path: '/',
      query: [
        ['Param2', 'value2'],
        ['Param1', 'value1'],
      ],
    },
    signature: 'b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500',
  },
  {
    name: 'get-vanilla-query-order-value',
    request: {
      path: '/',
      query: [
        ['Param1', 'value2'],
        ['Param1', 'value1'],
      ],
    },
    signature: '5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694',
  },
  {
    name: 'get-vanilla-query-order-encoded',
    request: {
      path: '/',
      query: [
        ['Param-3', 'Value3'],
        ['Param', 'Value2'],
        ['\u1234', 'Value1'],
      ],
    },
    signature: '371d3713e185cc334048618a97f809c9ffe339c62934c032af5a0e595648fcac',
  },
  {
    name: 'get-vanilla-query-unreserved',
    request: { path: '/', query: [[UNRESERVED, UNRESERVED]] },
    signature: '9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197',
  },
  {
    name: 'get-vanilla-utf8-query',
    request: { path: '/', query: [['\u1234', 'bar']] },
    signature: '2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04',
  },
  {
    name: 'get-unreserved',
    request: { path: `/${UNRESERVED}` },
    signature: '07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f',
  },
  {
    name: 'get-utf8',
    request: { path: '/\u1234' },
    signature: '8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85',
  },
  {
    name: 'normalize-path/get-space',
    request: { path: '/example space/' },
    signature: '652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741',
  },
  {
    name: 'get-header-key-duplicate',
    request: { path: '/', headers: { 'My-Header1': 'value2,value2,value1' } },
    signedHeaders: 'host;my-header1;x-amz-date',
    signature: 'c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea',
  },
];

void describe('SigV4 signer', () => {
  for (const c of CASES) {
    void it(`AWS test suite: ${c.name}`, () => {
      const s = sign({ ...SUITE, path: '/', ...c.request });
      assert.equal(s.signature, c.signature, s.canonicalRequest);
      assert.equal(
        s.headers.authorization,
        `AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=${c.signedHeaders ?? 'host;x-amz-date'}, Signature=${c.signature}`,
      );
      assert.equal(s.headers['x-amz-date'], '20150830T123600Z');
    });
  }

  void it('the published get-vanilla canonical request and string to sign, line by line', () => {
    const s = sign({ ...SUITE, path: '/' });
    assert.equal(
      s.canonicalRequest,
      `GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n${EMPTY_SHA256}`,
    );
    assert.equal(
      s.stringToSign,
      'AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nbb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63',
    );
  });

  void it("the S3 documentation's GET Object example (Range: bytes=0-9)", () => {
    const s = sign({
      method: 'GET',
      host: 'examplebucket.s3.amazonaws.com',
      path: '/test.txt',
      headers: { Range: 'bytes=0-9', 'x-amz-content-sha256': EMPTY_SHA256 },
      payloadHash: EMPTY_SHA256,
      credentials: {
        accessKeyId: 'AKIAIOSFODNN7EXAMPLE',
        secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
      },
      region: 'us-east-1',
      service: 's3',
      date: new Date('2013-05-24T00:00:00Z'),
    });
    assert.equal(
      s.stringToSign,
      'AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972',
    );
    assert.equal(
      s.headers.authorization,
      'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41',
    );
  });

  void it('signs and sends a session token; S3 paths are encoded once and never normalized', () => {
    const s = sign({
      ...SUITE,
      path: '/b/a key/../ü//x',
      credentials: { ...SUITE.credentials, sessionToken: 'tok/en+=' },
    });
    assert.equal(s.headers['x-amz-security-token'], 'tok/en+=');
    assert.match(s.headers.authorization!, /SignedHeaders=host;x-amz-date;x-amz-security-token,/);
    assert.equal(s.canonicalRequest.split('\n')[1], '/b/a%20key/../%C3%BC//x');
    assert.equal(encodePath('/b/k+%?#'), '/b/k%2B%25%3F%23');
    assert.equal(amzDate(new Date('2026-12-02T16:04:05.678Z')), '20261202T160405Z');
  });
});
