// resourceVersion ordering. Kubernetes 1.35 made resource versions officially comparable (KEP-5504): for objects of
// one resource from the built-in API server they are decimal integers without leading zeros, and a larger number is a
// later write. Anything else (an aggregated API server's own scheme) is "not comparable", and callers fall back to
// equality.

const decimal = /^[1-9]\d*$/;

/** -1, 0 or 1 as a is older than, equal to or newer than b; undefined when either is not a comparable version. */
export function compareResourceVersion(a: string | undefined, b: string | undefined): -1 | 0 | 1 | undefined {
  if (a === undefined || b === undefined || !decimal.test(a) || !decimal.test(b)) return undefined;
  if (a.length !== b.length) return a.length < b.length ? -1 : 1;
  return a === b ? 0 : a < b ? -1 : 1;
}

/** True when `seen` is at least `written` (the cache has caught up with that write); unknown ordering counts as not. */
export function isAtLeast(seen: string | undefined, written: string | undefined): boolean {
  const c = compareResourceVersion(seen, written);
  return c !== undefined && c >= 0;
}
