/** Sizes: parsing user/Kubernetes quantities and upstream's filesystem-overhead arithmetic. */
import { ErrorKind, ImportError } from './errors.ts';

export const MiB = 1024 * 1024;

const SUFFIX: Record<string, number> = {
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  Ki: 1024,
  Mi: 1024 ** 2,
  Gi: 1024 ** 3,
  Ti: 1024 ** 4,
  Pi: 1024 ** 5,
};

/** Parses `1073741824`, `10Gi`, `512Mi`, `1G`, `1.5Gi` (a Kubernetes quantity) into bytes (rounded up). */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(|k|M|G|T|P|Ki|Mi|Gi|Ti|Pi)\s*$/.exec(text);
  const mult = m ? SUFFIX[m[2] ?? ''] : undefined;
  if (!m || mult === undefined)
    throw new ImportError(
      ErrorKind.Invalid,
      `invalid size "${text}": use bytes or a quantity like 10Gi, 512Mi`,
    );
  return Math.ceil(Number(m[1]) * mult);
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
