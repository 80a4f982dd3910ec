// DataImportCron.spec.schedule: the standard cron syntax upstream parses with robfig/cron's ParseStandard (five
// fields: minute hour day-of-month month day-of-week; `*`, `?`, lists, ranges, steps, month and weekday names; the
// descriptors @yearly @annually @monthly @weekly @daily @midnight @hourly and `@every <duration>`; an optional
// `TZ=`/`CRON_TZ=` prefix). parseSchedule returns undefined for a valid schedule and otherwise what is wrong. For a
// registry URL the CronJob that runs the poller (kube-controller-manager) does the timing; for the sources the
// controller polls itself (pullMethod node, pvc) nextScheduleTime says when to poll next.

const FIELDS = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day of month', min: 1, max: 31 },
  {
    name: 'month',
    min: 1,
    max: 12,
    names: ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'],
  },
  { name: 'day of week', min: 0, max: 6, names: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] },
] as const;

const DESCRIPTORS = new Set([
  '@yearly',
  '@annually',
  '@monthly',
  '@weekly',
  '@daily',
  '@midnight',
  '@hourly',
]);

function value(text: string, f: (typeof FIELDS)[number]): number | undefined {
  const names: readonly string[] = 'names' in f ? f.names : [];
  const i = names.indexOf(text.toLowerCase());
  if (i >= 0) return f.min + i;
  if (!/^\d+$/.test(text)) return undefined;
  const n = Number(text);
  return n >= f.min && n <= f.max ? n : undefined;
}

function checkField(text: string, f: (typeof FIELDS)[number]): string | undefined {
  for (const part of text.split(',')) {
    const [range = '', step, extra] = part.split('/');
    if (extra !== undefined) return `${f.name} "${part}": more than one "/"`;
    if (step !== undefined && (!/^\d+$/.test(step) || Number(step) === 0))
      return `${f.name} "${part}": the step must be a positive number`;
    if (range === '*' || range === '?') continue;
    const [lo = '', hi, more] = range.split('-');
    if (more !== undefined) return `${f.name} "${part}": more than one "-"`;
    const a = value(lo, f);
    const b = hi === undefined ? a : value(hi, f);
    if (a === undefined || b === undefined)
      return `${f.name} "${part}": not a value in ${f.min}-${f.max}${'names' in f ? ' or a name' : ''}`;
    if (b < a) return `${f.name} "${part}": the range ends before it starts`;
  }
  return undefined;
}

/** undefined when the schedule is valid; otherwise what is wrong with it. */
export function parseSchedule(schedule: string): string | undefined {
  let s = schedule.trim();
  const tz = /^(CRON_)?TZ=\S+\s+/.exec(s);
  if (tz) s = s.slice(tz[0].length);
  if (s.startsWith('@')) {
    if (DESCRIPTORS.has(s)) return undefined;
    const every = /^@every\s+((?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+)$/.exec(s);
    if (every) return undefined;
    return `unrecognized descriptor "${s}"`;
  }
  const fields = s.split(/\s+/).filter(Boolean);
  if (fields.length !== 5) return `expected exactly 5 fields, found ${fields.length}: "${schedule}"`;
  for (const [i, f] of FIELDS.entries()) {
    const problem = checkField(fields[i]!, f);
    if (problem) return problem;
  }
  return undefined;
}

// ---- when a schedule fires next (robfig/cron's Schedule.Next), for the crons the controller polls itself ----

const DESCRIPTOR_SPECS: Record<string, string> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
};

const DURATION_UNITS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

interface FieldSet {
  values: Set<number>;
  /** `*` or `?` without a step (robfig's starBit): decides how day of month and day of week combine. */
  star: boolean;
}

function fieldSet(text: string, f: (typeof FIELDS)[number]): FieldSet {
  const values = new Set<number>();
  let star = false;
  for (const part of text.split(',')) {
    const [range = '', stepText] = part.split('/');
    const step = stepText === undefined ? 1 : Number(stepText);
    let lo: number;
    let hi: number;
    if (range === '*' || range === '?') {
      lo = f.min;
      hi = f.max;
      if (step === 1) star = true;
    } else {
      const [a = '', b] = range.split('-');
      lo = value(a, f) ?? f.min;
      // "N/step" is "N-max/step"
      hi = b !== undefined ? (value(b, f) ?? f.max) : stepText !== undefined ? f.max : lo;
    }
    for (let v = lo; v <= hi; v += step) values.add(v);
  }
  return { values, star };
}

/** The zone's wall clock at `t`, as a UTC timestamp (ms) with the same fields. */
function wallClock(t: number, zone: string): number {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone: zone,
    hourCycle: 'h23',
    year: 'numeric',
    month: 'numeric',
    day: 'numeric',
    hour: 'numeric',
    minute: 'numeric',
    second: 'numeric',
  }).formatToParts(new Date(t));
  const n = (type: string): number => Number(parts.find((p) => p.type === type)?.value ?? 0);
  return Date.UTC(n('year'), n('month') - 1, n('day'), n('hour'), n('minute'), n('second'));
}

/**
 * The first time strictly after `after` that `schedule` fires (robfig/cron's Next: whole minutes for the five
 * fields, `after` + the duration for `@every`), in UTC unless it names a `TZ=`/`CRON_TZ=` zone; undefined when the
 * schedule is invalid or does not fire within five years (as robfig's search).
 */
export function nextScheduleTime(schedule: string, after: Date): Date | undefined {
  if (parseSchedule(schedule) !== undefined) return undefined;
  let s = schedule.trim();
  let zone: string | undefined;
  const tz = /^(?:CRON_)?TZ=(\S+)\s+/.exec(s);
  if (tz) {
    zone = tz[1];
    s = s.slice(tz[0].length);
  }
  const every = /^@every\s+(\S+)$/.exec(s);
  if (every) {
    let ms = 0;
    for (const [, n, unit] of every[1]!.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g))
      ms += Number(n) * DURATION_UNITS[unit!]!;
    // robfig rounds the delay up to a second and starts from the whole second
    const delay = Math.max(1000, Math.ceil(ms / 1000) * 1000);
    return new Date(Math.floor(after.getTime() / 1000) * 1000 + delay);
  }
  const [mi = '', ho = '', dm = '', mo = '', dw = ''] = (DESCRIPTOR_SPECS[s] ?? s).split(/\s+/);
  const [minute, hour, dom, month, dow] = [mi, ho, dm, mo, dw].map((t, i) => fieldSet(t, FIELDS[i]!)) as [
    FieldSet,
    FieldSet,
    FieldSet,
    FieldSet,
    FieldSet,
  ];
  const dayMatches = (d: Date): boolean => {
    const a = dom.values.has(d.getUTCDate());
    const b = dow.values.has(d.getUTCDay());
    return dom.star || dow.star ? a && b : a || b;
  };
  const start = zone ? wallClock(after.getTime(), zone) : after.getTime();
  const t = new Date(Math.floor(start / 60_000) * 60_000 + 60_000);
  const limit = start + 5 * 366 * 24 * 3_600_000;
  while (t.getTime() < limit) {
    if (!month.values.has(t.getUTCMonth() + 1)) {
      t.setUTCMonth(t.getUTCMonth() + 1, 1);
      t.setUTCHours(0, 0, 0, 0);
    } else if (!dayMatches(t)) {
      t.setUTCDate(t.getUTCDate() + 1);
      t.setUTCHours(0, 0, 0, 0);
    } else if (!hour.values.has(t.getUTCHours())) {
      t.setUTCHours(t.getUTCHours() + 1, 0, 0, 0);
    } else if (!minute.values.has(t.getUTCMinutes())) {
      t.setUTCMinutes(t.getUTCMinutes() + 1, 0, 0);
    } else {
      if (!zone) return t;
      // the wall time back to an instant: subtract the zone's offset there (looked up twice, for DST edges)
      const wall = t.getTime();
      const guess = wall - (wallClock(wall, zone) - wall);
      return new Date(wall - (wallClock(guess, zone) - guess));
    }
  }
  return undefined;
}
