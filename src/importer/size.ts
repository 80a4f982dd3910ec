/** Sizes: parsing user/Kubernetes quantities and upstream's filesystem-overhead arithmetic. */
import { parseByteSize, QuantityError } from '../api/quantity.ts';
import { ErrorKind, ImportError } from './errors.ts';

export const MiB = 1024 * 1024;

/**
 * Parses `1073741824`, `10Gi`, `512Mi`, `1G`, `1.5Gi`, `1e9` (a Kubernetes quantity, src/api/quantity.ts) into
 * bytes, rounded up.
 */
export function parseSize(text: string): number {
  let bytes: bigint;
  try {
    bytes = parseByteSize(text);
  } catch (e) {
    if (e instanceof QuantityError) throw new ImportError(ErrorKind.Invalid, e.message);
    throw e;
  }
  // the data path counts in numbers: above 2^53 only values a double holds exactly (1Ei does) are safe
  if (BigInt(Number(bytes)) !== bytes)
    throw new ImportError(
      ErrorKind.Invalid,
      `invalid size "${text}": above ${Number.MAX_SAFE_INTEGER} bytes only round sizes such as 1Ei can be used`,
    );
  return Number(bytes);
}

export function roundDown(n: number, multiple: number): number {
  return Math.floor(n / multiple) * multiple;
}

export function roundUp(n: number, multiple: number): number {
  return Math.ceil(n / multiple) * multiple;
}

/** Upstream GetUsableSpace: the overhead is a multiplier, and the result is aligned down to 1 MiB. */
export function usableSpace(filesystemOverhead: number, available: number): number {
  return roundDown(Math.ceil(available / (1 + filesystemOverhead)), MiB);
}

/** Upstream GetRequiredSpace: the PVC size that holds `requested` usable bytes after the overhead. */
export function requiredSpace(filesystemOverhead: number, requested: number): number {
  return Math.ceil(roundUp(requested, MiB) * (1 + filesystemOverhead));
}

export function humanSize(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${units[i]}`;
}
