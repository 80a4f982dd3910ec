/**
 * Image references as a registry source's URL names them (upstream: `docker://` and `oci-archive://`):
 *   docker://[host[:port]/]repository[:tag][@sha256:…]   (no host: Docker Hub; one-part names get `library/`)
 *   oci-archive://<path to a tar of an OCI layout>[:<ref.name>]
 */
import { ErrorKind, ImportError } from '../../errors.ts';

export interface DockerReference {
  kind: 'docker';
  /** host[:port] as written (Docker Hub is `docker.io`). */
  registry: string;
  repository: string;
  tag?: string;
  digest?: string;
  /** For messages. */
  text: string;
}

export interface ArchiveReference {
  kind: 'oci-archive';
  path: string;
  /** The `org.opencontainers.image.ref.name` to pick from the archive's index, when it holds several images. */
  ref?: string;
  text: string;
}

export type ImageReference = DockerReference | ArchiveReference;

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
export const DIGEST = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;

function bad(url: string, why: string): ImportError {
  return new ImportError(ErrorKind.Invalid, `invalid image URL "${url}": ${why}`);
}

export function parseImageUrl(url: string): ImageReference {
  if (url.startsWith('oci-archive://')) {
    const rest = url.slice('oci-archive://'.length);
    // A `:name` suffix picks an image by ref.name; a colon inside the path's directories stays part of the path.
    const colon = rest.lastIndexOf(':');
    const slash = rest.lastIndexOf('/');
    const [p, ref] = colon > slash ? [rest.slice(0, colon), rest.slice(colon + 1)] : [rest, undefined];
    if (p === '') throw bad(url, 'no archive path after oci-archive://');
    return { kind: 'oci-archive', path: p, ...(ref ? { ref } : {}), text: url };
  }
  if (!url.startsWith('docker://')) {
    throw bad(url, 'use docker://[registry/]repository[:tag][@digest] or oci-archive://<path>');
  }
  let rest = url.slice('docker://'.length);
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw bad(url, `"${digest}" is not a sha256:/sha512: digest`);
  }
  const parts = rest.split('/');
  let registry = 'docker.io';
  if (parts.length > 1 && (/[.:]/.test(parts[0]!) || parts[0] === 'localhost')) registry = parts.shift()!;
  if (registry === '' || /[^A-Za-z0-9.:[\]-]/.test(registry))
    throw bad(url, `bad registry host "${registry}"`);
  let tag: string | undefined;
  const last = parts.at(-1) ?? '';
  const colon = last.indexOf(':');
  if (colon >= 0) {
    tag = last.slice(colon + 1);
    parts[parts.length - 1] = last.slice(0, colon);
    if (!TAG.test(tag)) throw bad(url, `bad tag "${tag}"`);
  }
  if (parts.length === 0 || parts.some((c) => !COMPONENT.test(c))) {
    throw bad(url, 'the repository must be lowercase path components like "org/image"');
  }
  if (registry === 'docker.io' && parts.length === 1) parts.unshift('library');
  if (!tag && !digest) tag = 'latest';
  return {
    kind: 'docker',
    registry,
    repository: parts.join('/'),
    ...(tag ? { tag } : {}),
    ...(digest ? { digest } : {}),
    text: url,
  };
}

/** The host the distribution API is served on (Docker Hub's API is not on docker.io itself). */
export function apiHost(registry: string): string {
  return registry === 'docker.io' ? 'registry-1.docker.io' : registry;
}
