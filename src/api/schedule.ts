// DataImportCron.spec.schedule: the standard cron syntax upstream parses with robfig/cron's ParseStandard (five
// fields: minute hour day-of-month month day-of-week; `*`, `?`, lists, ranges, steps, month and weekday names; the
// descriptors @yearly @annually @monthly @weekly @daily @midnight @hourly and `@every <duration>`; an optional
// `TZ=`/`CRON_TZ=` prefix). Only validation: the CronJob that runs the poller (kube-controller-manager) does the
// timing. parseSchedule returns undefined for a valid schedule and otherwise what is wrong.

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
