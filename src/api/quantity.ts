// Kubernetes resource quantities ("10Gi", "500M", "1e9", "0.5Gi", "100m") as exact whole numbers, the one parser
// every component uses (the controllers for PVC sizes, the importer and the CLI for image sizes).
//
// Semantics are apimachinery's resource.ParseQuantity followed by Quantity.Value():
// - a signed decimal number (`1`, `1.5`, `.5`, `5.`), then at most one suffix: binary SI (Ki Mi Gi Ti Pi Ei),
//   decimal SI (n u m k M G T P E) or a decimal exponent (e/E with a signed integer: `1e9`, `2E-3`);
// - the value is exact (bigint arithmetic, no float on the way) and rounded away from zero to a whole unit,
//   so `100m` is 1 and `0.1Ki` is 103;
// - surrounding white space is ignored (UnmarshalJSON trims it).
// Deliberate differences, both for a clearer error instead of a surprising size: a quantity without any digit
// ("Gi", "."), which ParseQuantity reads as 0, is rejected; and a value beyond int64 (what Quantity.Value() can
// return) is rejected, where ParseQuantity silently caps binary-suffixed values at 2^63-1.

export class QuantityError extends Error {
  override name = 'QuantityError';
}

const binaryShift: Record<string, bigint> = { Ki: 10n, Mi: 20n, Gi: 30n, Ti: 40n, Pi: 50n, Ei: 60n };
const decimalExp: Record<string, number> = { n: -9, u: -6, m: -3, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };

const pattern = /^([+-]?)(?:(\d+)(?:\.(\d*))?|\.(\d+))(?:(Ki|Mi|Gi|Ti|Pi|Ei)|([numkMGTPE])|[eE]([+-]?\d+))?$/;

/** The largest whole value a Quantity can hold (int64). */
export const MaxQuantity = (1n << 63n) - 1n;

const hint =
  'expected a number with an optional suffix (Ki, Mi, Gi, Ti, Pi, Ei, n, u, m, k, M, G, T, P, E) or exponent, e.g. 10Gi, 500M or 1e9';

/**
 * Parses a quantity into its whole value, rounded away from zero as Quantity.Value() does. Numbers (the
 * int-or-string form of `storage: 1073741824`) are accepted too. Throws QuantityError naming the input.
 */
export function parseQuantity(input: string | number): bigint {
  return parseScaled(input, 0);
}

/** The quantity in thousandths, rounded away from zero, as Quantity.MilliValue() (CPU: `100m` is 100, `1.5` 1500). */
export function parseMilliQuantity(input: string | number): bigint {
  return parseScaled(input, 3);
}

/** The whole value of input × 10^scale10. */
function parseScaled(input: string | number, scale10: number): bigint {
  const text = typeof input === 'number' ? numberText(input) : input.trim();
  const m = pattern.exec(text);
  if (!m) throw new QuantityError(`invalid quantity "${String(input)}": ${hint}`);
  const [, sign, whole = '', frac1 = '', frac2 = '', bin, dec, exp] = m;
  const frac = frac1 || frac2;
  let digits = BigInt(`${whole}${frac}` || '0');
  let exp10 = scale10 - frac.length;
  if (bin) digits <<= binaryShift[bin] ?? 0n;
  else if (dec) exp10 += decimalExp[dec] ?? 0;
  else if (exp !== undefined) {
    const e = Number(exp);
    // beyond this the value is either 0 < x < 1 (rounds to 1) or far beyond int64; keeps 10n ** e small
    if (Math.abs(e) > 1000) {
      if (e > 0 && digits !== 0n) throw tooLarge(input);
      return digits === 0n ? 0n : sign === '-' ? -1n : 1n;
    }
    exp10 += e;
  }
  let value: bigint;
  if (exp10 >= 0) value = digits * 10n ** BigInt(exp10);
  else {
    const div = 10n ** BigInt(-exp10);
    value = (digits + div - 1n) / div;
  }
  if (value > MaxQuantity) throw tooLarge(input);
  return sign === '-' ? -value : value;
}

/** A size in bytes: a quantity that is not negative. `what` names the field in the error. */
export function parseByteSize(input: string | number, what = 'size'): bigint {
  let n: bigint;
  try {
    n = parseQuantity(input);
  } catch (e) {
    if (e instanceof QuantityError)
      throw new QuantityError(e.message.replace(/^invalid quantity/, `invalid ${what}`));
    throw e;
  }
  if (n < 0n) throw new QuantityError(`invalid ${what} "${String(input)}": a size cannot be negative`);
  return n;
}

function numberText(n: number): string {
  if (!Number.isFinite(n)) throw new QuantityError(`invalid quantity ${n}: ${hint}`);
  // String(1e21) is "1e+21", which the pattern accepts; String(0.1) is "0.1"
  return String(n);
}

function tooLarge(input: string | number): QuantityError {
  return new QuantityError(
    `invalid quantity "${String(input)}": larger than the largest quantity Kubernetes holds (${MaxQuantity}, just under 8Ei)`,
  );
}
