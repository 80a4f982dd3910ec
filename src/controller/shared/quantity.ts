// Byte arithmetic on Kubernetes resource quantities ("1Gi", "500M", "1.5e3"): exact byte counts.
// Sizes are bigint: a 64-bit volume size must not round through a float on its way to the API server.

// One parser for the whole project (Kubernetes resource.Quantity semantics): src/api/quantity.ts.
export { parseMilliQuantity, parseQuantity } from '../../api/quantity.ts';

export const MiB = 1n << 20n;

export function roundUp(n: bigint, multiple: bigint): bigint {
  return ((n + multiple - 1n) / multiple) * multiple;
}

export function roundDown(n: bigint, multiple: bigint): bigint {
  return (n / multiple) * multiple;
}

/**
 * Space to request so that `requested` bytes remain usable after filesystem overhead (upstream GetRequiredSpace):
 * ceil(roundUp(requested, 1MiB) × (1 + overhead)).
 * Computed in float64 as upstream does, so sizes match upstream's to the byte.
 */
export function requiredSpace(overhead: number, requested: bigint): bigint {
  const aligned = roundUp(requested, MiB);
  return BigInt(Math.ceil(Number(aligned) * (1 + overhead)));
}

/** Usable bytes on a volume of `available` bytes (upstream GetUsableSpace): roundDown(ceil(avail ÷ (1 + overhead)), 1MiB). */
export function usableSpace(overhead: number, available: bigint): bigint {
  return roundDown(BigInt(Math.ceil(Number(available) / (1 + overhead))), MiB);
}

/** Parses a filesystem overhead ("0.06", "0", "1") as upstream's CRD pattern allows. */
export function parseOverhead(s: string | undefined): number {
  if (s === undefined || s === '') return 0;
  if (!/^(0(?:\.\d{1,3})?|1)$/.test(s))
    throw new Error(`invalid filesystem overhead "${s}": expected 0, 1 or 0.xxx`);
  return Number(s);
}

type Quantities = Record<string, string | number>;

/**
 * The API accepts int-or-string quantities (`storage: 1073741824`); PVC and pod specs carry strings. Other fields
 * (`claims`) are kept; the result is a copy.
 */
export function stringQuantities<R extends { limits?: Quantities; requests?: Quantities }>(
  r: R,
): Omit<R, 'limits' | 'requests'> & { limits?: Record<string, string>; requests?: Record<string, string> } {
  const str = (q: Quantities): Record<string, string> =>
    Object.fromEntries(Object.entries(q).map(([k, v]) => [k, String(v)]));
  const { limits, requests, ...rest } = structuredClone(r);
  return {
    ...rest,
    ...(limits ? { limits: str(limits) } : {}),
    ...(requests ? { requests: str(requests) } : {}),
  };
}
