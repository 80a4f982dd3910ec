import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import {
  caName,
  commonName,
  createCA,
  issueClientCert,
  issueServerCert,
  parseSigner,
  validityFrom,
  type Signer,
} from './pki.ts';

const run = promisify(execFile);
const HOUR = 3600_000;

void describe('pki', () => {
  let ca: Signer;
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cdi-pki-'));
    ca = await createCA(
      caName('cdi', 'cdi-uploadproxy-signer', new Date(1_700_000_000_000)),
      validityFrom(new Date(), 48 * HOUR),
    );
  });
  after(() => rm(dir, { recursive: true, force: true }));

  void it('makes a CA that openssl accepts as a self-signed root', async () => {
    assert.equal(ca.cert.ca, true);
    assert.equal(commonName(ca.cert.subject), 'cdi_cdi-uploadproxy-signer@1700000000');
    assert.ok(ca.cert.verify(ca.cert.publicKey));
    await writeFile(path.join(dir, 'ca.crt'), ca.certPem);
    const { stdout } = await run('openssl', [
      'verify',
      '-CAfile',
      path.join(dir, 'ca.crt'),
      path.join(dir, 'ca.crt'),
    ]);
    assert.match(stdout, /OK/);
    const text = (await run('openssl', ['x509', '-in', path.join(dir, 'ca.crt'), '-noout', '-text'])).stdout;
    assert.match(text, /CA:TRUE/);
    assert.match(text, /Certificate Sign/);
    assert.equal(parseSigner(ca.certPem, ca.keyPem).cert.fingerprint256, ca.cert.fingerprint256);
  });

  void it('refuses a key that does not belong to the CA', async () => {
    const other = await createCA('other', validityFrom(new Date(), HOUR));
    assert.throws(() => parseSigner(ca.certPem, other.keyPem), /does not belong/);
  });

  void it('issues a server certificate for Service names and an IP that a TLS client accepts, with mTLS', async () => {
    const server = await issueServerCert(
      ca,
      ['cdi-uploadproxy', 'cdi-uploadproxy.cdi.svc', '127.0.0.1'],
      validityFrom(new Date(), 24 * HOUR),
    );
    const cert = new X509Certificate(server.certPem);
    assert.equal(cert.checkHost('cdi-uploadproxy.cdi.svc'), 'cdi-uploadproxy.cdi.svc');
    assert.equal(cert.checkIP('127.0.0.1'), '127.0.0.1');
    assert.equal(cert.checkHost('evil.example'), undefined);
    assert.ok(cert.checkIssued(ca.cert) && cert.verify(ca.cert.publicKey));
    assert.equal(cert.ca, false);

    const client = await issueClientCert(
      ca,
      'client.upload-server.cdi.kubevirt.io',
      ['system:masters'],
      validityFrom(new Date(), HOUR),
    );
    const cc = new X509Certificate(client.certPem);
    assert.match(cc.subject, /CN=client\.upload-server\.cdi\.kubevirt\.io/);
    assert.match(cc.subject, /O=system:masters/);

    const srv = https.createServer(
      {
        cert: server.certPem,
        key: server.keyPem,
        ca: ca.certPem,
        requestCert: true,
        rejectUnauthorized: false,
      },
      (req, res) => {
        const s = req.socket as import('node:tls').TLSSocket;
        res.end(
          `${s.authorized ? 'verified' : 'unverified'} ${String(s.getPeerCertificate().subject?.CN ?? '-')}`,
        );
      },
    );
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as import('node:net').AddressInfo).port;
    const get = (opts: https.RequestOptions): Promise<string> =>
      new Promise((resolve, reject) => {
        https
          .get(
            { host: '127.0.0.1', port, ca: ca.certPem, servername: 'cdi-uploadproxy.cdi.svc', ...opts },
            (res) => {
              let body = '';
              res.on('data', (d: Buffer) => (body += d.toString()));
              res.on('end', () => resolve(body));
            },
          )
          .on('error', reject);
      });
    try {
      assert.equal(
        await get({ cert: client.certPem, key: client.keyPem }),
        'verified client.upload-server.cdi.kubevirt.io',
      );
      assert.equal(await get({}), 'unverified -');
    } finally {
      srv.close();
    }
  });

  void it('never lets a leaf outlive its CA', async () => {
    const shortCa = await createCA('short', validityFrom(new Date(), HOUR));
    const leaf = await issueServerCert(shortCa, ['x'], validityFrom(new Date(), 24 * HOUR));
    assert.equal(new X509Certificate(leaf.certPem).validTo, shortCa.cert.validTo);
  });
});
