// Label selectors evaluated against cached objects, with the API server's syntax: `a=b`, `a==b`, `a!=b`, `a`, `!a`,
// `a in (x,y)`, `a notin (x,y)`, comma-separated and all required. A selector the cache cannot read is an error, not
// "match everything".

export type LabelRequirement =
  | { key: string; op: 'in'; values: string[] }
  | { key: string; op: 'notin'; values: string[] }
  | { key: string; op: 'exists' }
  | { key: string; op: 'notexists' };

/** Splits on commas that are not inside parentheses. */
function terms(selector: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of selector) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out.map((t) => t.trim()).filter((t) => t !== '');
}

export function parseLabelSelector(selector: string): LabelRequirement[] {
  const reqs: LabelRequirement[] = [];
  for (const t of terms(selector)) {
    let m: RegExpExecArray | null;
    if ((m = /^([^\s!=(),]+)\s+(in|notin)\s+\(([^()]*)\)$/.exec(t))) {
      const values = (m[3] ?? '').split(',').map((v) => v.trim());
      reqs.push({ key: m[1] ?? '', op: m[2] === 'in' ? 'in' : 'notin', values });
    } else if ((m = /^([^\s!=(),]+)\s*(==|=|!=)\s*([^\s!=(),]*)$/.exec(t))) {
      const values = [m[3] ?? ''];
      reqs.push({ key: m[1] ?? '', op: m[2] === '!=' ? 'notin' : 'in', values });
    } else if ((m = /^!\s*([^\s!=(),]+)$/.exec(t))) {
      reqs.push({ key: m[1] ?? '', op: 'notexists' });
    } else if ((m = /^([^\s!=(),]+)$/.exec(t))) {
      reqs.push({ key: m[1] ?? '', op: 'exists' });
    } else {
      throw new Error(`label selector "${selector}": cannot read "${t}"`);
    }
  }
  return reqs;
}

export function matchesLabels(
  labels: Readonly<Record<string, string>> | undefined,
  reqs: readonly LabelRequirement[],
): boolean {
  const l = labels ?? {};
  return reqs.every((r) => {
    const has = Object.hasOwn(l, r.key);
    switch (r.op) {
      case 'exists':
        return has;
      case 'notexists':
        return !has;
      case 'in':
        return has && r.values.includes(l[r.key] ?? '');
      case 'notin':
        return !has || !r.values.includes(l[r.key] ?? '');
    }
  });
}
