// Kubernetes resource quantities ("1Gi", "500M", "1.5e3") as exact byte counts.
// Sizes are bigint: a 64-bit volume size must not round through a float on its way to the API server.

const binary: Record<string, bigint> = {
  Ki: 1n << 10n,
  Mi: 1n << 20n,
  Gi: 1n << 30n,
  Ti: 1n << 40n,
  Pi: 1n << 50n,
  Ei: 1n << 60n,
};
const decimal: Record<string, number> = { n: -9, u: -6, m: -3, '': 0, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };

const re = /^([+-]?)(\d+(?:\.\d*)?|\.\d+)(?:(Ki|Mi|Gi|Ti|Pi|Ei)|([eE][+-]?\d+)|(n|u|m|k|M|G|T|P|E))?$/;

/** Parses a quantity into its value rounded up to a whole unit (as the API server's Value() does). */
export function parseQuantity(q: string): bigint {
  const m = re.exec(q.trim());
  if (!m)
    throw new Error(
      `invalid quantity "${q}": expected a number with an optional suffix such as 10Gi or 500M`,
    );
  const [, sign, num = '0', bin, exp, dec] = m;
  const [whole = '0', frac = ''] = num.split('.');
  // value = digits × 10^(exp10) × mult
  let digits = BigInt((whole || '0') + frac);
  let exp10 = -frac.length;
  let mult = 1n;
  if (bin) mult = binary[bin] ?? 1n;
  else if (exp) exp10 += Number(exp.slice(1));
  else if (dec !== undefined) exp10 += decimal[dec] ?? 0;
  digits *= mult;
  let value: bigint;
  if (exp10 >= 0) value = digits * 10n ** BigInt(exp10);
  else {
    const div = 10n ** BigInt(-exp10);
    value = (digits + div - 1n) / div; // round up, as resource.Quantity.Value() does
  }
  return sign === '-' ? -value : value;
}

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
