// The digest a registry URL names now (upstream importer.GetImageDigest, used by cdi-source-update-poller): the
// manifest digest of the tag, as the registry's Docker-Content-Digest says, or computed from the manifest bytes. For
// a multi-arch tag it is the index's digest, as upstream's: importing `<repo>@<that digest>` picks the platform again.
import { ErrorKind, ImportError } from '../../errors.ts';
import { RegistryClient, type RegistryClientOptions } from './client.ts';
import { digestOf } from './image.ts';
import { DIGEST, parseImageUrl } from './reference.ts';

export async function imageDigest(url: string, o: RegistryClientOptions = {}): Promise<string> {
  const ref = parseImageUrl(url);
  if (ref.kind !== 'docker')
    throw new ImportError(ErrorKind.Invalid, `a DataImportCron polls docker:// URLs only, not "${url}"`);
  if (ref.digest) return ref.digest;
  const client = new RegistryClient(ref, o);
  try {
    const m = await client.manifest();
    const d = m.digest ?? digestOf(m.body);
    if (!DIGEST.test(d))
      throw new ImportError(ErrorKind.Invalid, `the registry named an invalid digest "${d}"`);
    return d;
  } finally {
    await client.close();
  }
}
