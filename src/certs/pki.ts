/**
 * Certificate authorities and the certificates they sign, for CDI's own TLS (cdi-upstream.md §6): a self-signed CA per
 * purpose, server certificates for Services (DNS SANs), client certificates (CN, and O for groups).
 *
 * Keys are RSA 2048 made by node:crypto (PKCS#1 PEM, as upstream's library-go writes them); certificates are encoded
 * with pkijs (DER over asn1js) and signed through WebCrypto. node:crypto's X509Certificate reads them back. The shapes
 * follow library-go's crypto package, which upstream's operator uses: CA with basicConstraints CA:TRUE and
 * keyCertSign; leaves with digitalSignature+keyEncipherment and serverAuth or clientAuth; subject and authority key
 * identifiers; a random positive 128-bit serial; the CN of a CA `<namespace>_<name>@<unix seconds>`.
 */
import {
  createHash,
  createPrivateKey,
  generateKeyPair,
  randomBytes,
  webcrypto,
  X509Certificate,
} from 'node:crypto';
import { isIP } from 'node:net';
import { promisify } from 'node:util';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';

// pkijs signs through the global WebCrypto (globalThis.crypto) that Node provides.

const generateRsa = promisify(generateKeyPair);
const RSA = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } as const;

const OID = {
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  subjectKeyId: '2.5.29.14',
  authorityKeyId: '2.5.29.35',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
} as const;

/** A certificate and its private key, both PEM. */
export interface KeyPair {
  certPem: string;
  keyPem: string;
}

/** A CA that can sign: its certificate (parsed) and its key. */
export interface Signer extends KeyPair {
  cert: X509Certificate;
}

export interface Validity {
  notBefore: Date;
  notAfter: Date;
}

/**
 * Reads a CA from PEM, checking that the key belongs to the certificate and that it is a CA; the error says which
 * part is wrong (for a Secret someone edited by hand).
 */
export function parseSigner(certPem: string, keyPem: string): Signer {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (e) {
    throw new Error(`the CA certificate is not a PEM certificate: ${(e as Error).message}`);
  }
  let key;
  try {
    key = createPrivateKey(keyPem);
  } catch (e) {
    throw new Error(`the CA key is not a PEM private key: ${(e as Error).message}`);
  }
  if (!cert.checkPrivateKey(key))
    throw new Error(`the CA key does not belong to the certificate ${cert.subject}`);
  if (!cert.ca) throw new Error(`the certificate ${cert.subject} is not a CA`);
  return { cert, certPem, keyPem };
}

async function newKey(): Promise<{
  keyPem: string;
  publicDer: Buffer;
  privateCrypto: CryptoKey;
  publicCrypto: CryptoKey;
}> {
  const { privateKey, publicKey } = await generateRsa('rsa', {
    modulusLength: 2048,
    publicExponent: 0x10001,
  });
  const privateCrypto = await webcrypto.subtle.importKey(
    'pkcs8',
    privateKey.export({ type: 'pkcs8', format: 'der' }),
    RSA,
    false,
    ['sign'],
  );
  const publicDer = publicKey.export({ type: 'spki', format: 'der' });
  const publicCrypto = await webcrypto.subtle.importKey('spki', publicDer, RSA, true, ['verify']);
  return {
    keyPem: privateKey.export({ type: 'pkcs1', format: 'pem' }),
    publicDer,
    privateCrypto: privateCrypto,
    publicCrypto: publicCrypto,
  };
}

function name(cn: string, organizations: string[] = []): pkijs.RelativeDistinguishedNames {
  const rdn = new pkijs.RelativeDistinguishedNames();
  for (const o of organizations) {
    rdn.typesAndValues.push(
      new pkijs.AttributeTypeAndValue({ type: OID.organization, value: new asn1js.Utf8String({ value: o }) }),
    );
  }
  rdn.typesAndValues.push(
    new pkijs.AttributeTypeAndValue({ type: OID.commonName, value: new asn1js.Utf8String({ value: cn }) }),
  );
  return rdn;
}

function ext(
  id: string,
  critical: boolean,
  value: { toBER(sizeOnly?: boolean): ArrayBuffer },
): pkijs.Extension {
  return new pkijs.Extension({ extnID: id, critical, extnValue: value.toBER(false) });
}

/** keyUsage bits as a DER named bit list (trailing zero bits dropped). */
function keyUsage(bits: {
  digitalSignature?: boolean;
  keyEncipherment?: boolean;
  keyCertSign?: boolean;
}): asn1js.BitString {
  let byte = 0;
  if (bits.digitalSignature) byte |= 0x80;
  if (bits.keyEncipherment) byte |= 0x20;
  if (bits.keyCertSign) byte |= 0x04;
  let unused = 0;
  while (unused < 7 && (byte & (1 << unused)) === 0) unused++;
  return new asn1js.BitString({ valueHex: new Uint8Array([byte]).buffer, unusedBits: unused });
}

/** RFC 5280 method 1: SHA-1 of the subjectPublicKey bits. */
function keyId(spkiDer: Buffer): ArrayBuffer {
  const spki = pkijs.PublicKeyInfo.fromBER(new Uint8Array(spkiDer).buffer);
  const bits = new Uint8Array(spki.subjectPublicKey.valueBlock.valueHexView);
  return new Uint8Array(createHash('sha1').update(bits).digest()).buffer;
}

function serial(): asn1js.Integer {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f;
  if (b[0] === 0) b[0] = 1; // positive and minimal (no leading zero byte)
  return new asn1js.Integer({ valueHex: new Uint8Array(b).buffer });
}

async function build(opts: {
  subject: pkijs.RelativeDistinguishedNames;
  issuer: pkijs.RelativeDistinguishedNames;
  validity: Validity;
  key: Awaited<ReturnType<typeof newKey>>;
  signWith: CryptoKey;
  authorityKeyId: ArrayBuffer;
  extensions: pkijs.Extension[];
}): Promise<string> {
  const cert = new pkijs.Certificate();
  cert.version = 2;
  cert.serialNumber = serial();
  cert.subject = opts.subject;
  cert.issuer = opts.issuer;
  cert.notBefore.value = opts.validity.notBefore;
  cert.notAfter.value = opts.validity.notAfter;
  await cert.subjectPublicKeyInfo.importKey(opts.key.publicCrypto);
  const skid = keyId(opts.key.publicDer);
  cert.extensions = [
    ...opts.extensions,
    ext(OID.subjectKeyId, false, new asn1js.OctetString({ valueHex: skid })),
    ext(
      OID.authorityKeyId,
      false,
      new pkijs.AuthorityKeyIdentifier({
        keyIdentifier: new asn1js.OctetString({ valueHex: opts.authorityKeyId }),
      }).toSchema(),
    ),
  ];
  await cert.sign(opts.signWith, 'SHA-256');
  const der = Buffer.from(cert.toSchema().toBER(false));
  return new X509Certificate(der).toString();
}

/** A self-signed CA named `cn`, valid for `validity`. */
export async function createCA(cn: string, validity: Validity): Promise<Signer> {
  const key = await newKey();
  const subject = name(cn);
  const certPem = await build({
    subject,
    issuer: subject,
    validity,
    key,
    signWith: key.privateCrypto,
    authorityKeyId: keyId(key.publicDer),
    extensions: [
      ext(OID.basicConstraints, true, new pkijs.BasicConstraints({ cA: true }).toSchema()),
      ext(OID.keyUsage, true, keyUsage({ digitalSignature: true, keyEncipherment: true, keyCertSign: true })),
    ],
  });
  return { cert: new X509Certificate(certPem), certPem, keyPem: key.keyPem };
}

/** library-go's CA name: `<namespace>_<secret name>@<unix seconds>`, unique per rotation. */
export function caName(namespace: string, secretName: string, now: Date): string {
  return `${namespace}_${secretName}@${Math.floor(now.getTime() / 1000)}`;
}

async function issue(
  signer: Signer,
  subject: pkijs.RelativeDistinguishedNames,
  validity: Validity,
  extensions: pkijs.Extension[],
): Promise<KeyPair> {
  const key = await newKey();
  const caDer = new Uint8Array(signer.cert.raw).buffer;
  const ca = pkijs.Certificate.fromBER(caDer);
  const caSpki = Buffer.from(signer.cert.publicKey.export({ type: 'spki', format: 'der' }));
  const signWith = await webcrypto.subtle.importKey(
    'pkcs8',
    createPrivateKey(signer.keyPem).export({ type: 'pkcs8', format: 'der' }),
    RSA,
    false,
    ['sign'],
  );
  // A leaf never outlives the CA that signed it.
  const caEnd = new Date(signer.cert.validTo);
  const notAfter = validity.notAfter > caEnd ? caEnd : validity.notAfter;
  const certPem = await build({
    subject,
    issuer: ca.subject,
    validity: { notBefore: validity.notBefore, notAfter },
    key,
    signWith: signWith,
    authorityKeyId: keyId(caSpki),
    extensions: [
      ext(OID.basicConstraints, true, new pkijs.BasicConstraints({ cA: false }).toSchema()),
      ext(OID.keyUsage, true, keyUsage({ digitalSignature: true, keyEncipherment: true })),
      ...extensions,
    ],
  });
  return { certPem, keyPem: key.keyPem };
}

/**
 * A server certificate for `hostnames` (DNS names or IP addresses; the first one is also the CN), as library-go's
 * MakeServerCertForDuration.
 */
export function issueServerCert(signer: Signer, hostnames: string[], validity: Validity): Promise<KeyPair> {
  if (hostnames.length === 0) throw new Error('a server certificate needs at least one hostname');
  const names = hostnames.map((h) => {
    const v = isIP(h);
    if (v === 0) return new pkijs.GeneralName({ type: 2, value: h });
    const bytes = v === 4 ? Buffer.from(h.split('.').map(Number)) : Buffer.from(ipv6Bytes(h));
    return new pkijs.GeneralName({
      type: 7,
      value: new asn1js.OctetString({ valueHex: new Uint8Array(bytes).buffer }),
    });
  });
  return issue(signer, name(hostnames[0]!), validity, [
    ext(OID.extKeyUsage, false, new pkijs.ExtKeyUsage({ keyPurposes: [OID.serverAuth] }).toSchema()),
    ext(OID.subjectAltName, false, new pkijs.GeneralNames({ names }).toSchema()),
  ]);
}

/** A client certificate for `user` (CN) in `groups` (O), as library-go's MakeClientCertificateForDuration. */
export function issueClientCert(
  signer: Signer,
  user: string,
  groups: string[],
  validity: Validity,
): Promise<KeyPair> {
  return issue(signer, name(user, groups), validity, [
    ext(OID.extKeyUsage, false, new pkijs.ExtKeyUsage({ keyPurposes: [OID.clientAuth] }).toSchema()),
  ]);
}

function ipv6Bytes(ip: string): number[] {
  const [head, tail] = ip.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.flatMap((g) => {
    const n = parseInt(g, 16);
    return [n >> 8, n & 0xff];
  });
}

/** The validity of a certificate issued now for `lifetimeMs` (one second back, as library-go, for clock skew). */
export function validityFrom(now: Date, lifetimeMs: number): Validity {
  return { notBefore: new Date(now.getTime() - 1000), notAfter: new Date(now.getTime() + lifetimeMs) };
}

/** The CN of a certificate's subject or issuer text (X509Certificate gives "O=a\nCN=b"). */
export function commonName(dn: string): string | undefined {
  return dn
    .split('\n')
    .map((l) => /^CN=(.*)$/.exec(l)?.[1])
    .find((v) => v !== undefined);
}

/** Every certificate in a PEM bundle, parsed; invalid blocks are skipped. */
export function parseBundle(pem: string | undefined): X509Certificate[] {
  if (!pem) return [];
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  const out: X509Certificate[] = [];
  for (const b of blocks) {
    try {
      out.push(new X509Certificate(b));
    } catch {
      // a damaged entry is dropped; the bundle is rebuilt from what is valid
    }
  }
  return out;
}
