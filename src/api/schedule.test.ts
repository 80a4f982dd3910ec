import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nextScheduleTime, parseSchedule } from './schedule.ts';

void test('the schedules robfig/cron ParseStandard accepts are valid', () => {
  for (const s of [
    '0 */12 * * *',
    '*/5 * * * *',
    '30 2 1-15/2 jan-jun mon,wed,FRI',
    '0 0 ? * SUN',
    '@daily',
    '@hourly',
    '@every 1h30m',
    'CRON_TZ=Europe/Rome 0 3 * * *',
  ])
    assert.equal(parseSchedule(s), undefined, s);
});

void test('what ParseStandard refuses is refused, with the reason', () => {
  assert.equal(parseSchedule('* * * *'), 'expected exactly 5 fields, found 4: "* * * *"');
  assert.equal(parseSchedule('60 * * * *'), 'minute "60": not a value in 0-59');
  assert.equal(parseSchedule('* 5-1 * * *'), 'hour "5-1": the range ends before it starts');
  assert.equal(parseSchedule('*/0 * * * *'), 'minute "*/0": the step must be a positive number');
  assert.equal(parseSchedule('* * * foo *'), 'month "foo": not a value in 1-12 or a name');
  assert.equal(parseSchedule('* * * * 7'), 'day of week "7": not a value in 0-6 or a name');
  assert.equal(parseSchedule('@sometimes'), 'unrecognized descriptor "@sometimes"');
  assert.equal(parseSchedule(''), 'expected exactly 5 fields, found 0: ""');
});

void test('nextScheduleTime: the first firing strictly after the time, as robfig/cron Next', () => {
  const at = (iso: string) => new Date(iso);
  const next = (s: string, iso: string) => nextScheduleTime(s, at(iso))?.toISOString();
  assert.equal(next('* * * * *', '2024-05-01T10:20:30.500Z'), '2024-05-01T10:21:00.000Z');
  assert.equal(next('* * * * *', '2024-05-01T10:20:00.000Z'), '2024-05-01T10:21:00.000Z');
  assert.equal(next('0 */12 * * *', '2024-05-01T10:20:00Z'), '2024-05-01T12:00:00.000Z');
  assert.equal(next('0 */12 * * *', '2024-05-01T12:00:00Z'), '2024-05-02T00:00:00.000Z');
  assert.equal(next('0 3 * * *', '2024-12-31T04:00:00Z'), '2025-01-01T03:00:00.000Z');
  assert.equal(next('30 2 1 * *', '2024-01-31T00:00:00Z'), '2024-02-01T02:30:00.000Z');
  // "N/step" runs from N to the end of the range
  assert.equal(next('50/5 * * * *', '2024-05-01T10:56:00Z'), '2024-05-01T11:50:00.000Z');
  // both days restricted: either matches (Fridays or the 13th); one starred: both must
  assert.equal(next('0 0 13 * fri', '2024-05-01T00:00:00Z'), '2024-05-03T00:00:00.000Z');
  assert.equal(next('0 0 * * fri', '2024-05-01T00:00:00Z'), '2024-05-03T00:00:00.000Z');
  assert.equal(next('0 0 29 2 *', '2024-03-01T00:00:00Z'), '2028-02-29T00:00:00.000Z');
  assert.equal(next('@hourly', '2024-05-01T10:20:00Z'), '2024-05-01T11:00:00.000Z');
  assert.equal(next('@weekly', '2024-05-01T10:20:00Z'), '2024-05-05T00:00:00.000Z');
  assert.equal(next('@every 1h30m', '2024-05-01T10:20:30.700Z'), '2024-05-01T11:50:30.000Z');
  assert.equal(next('@every 10ms', '2024-05-01T10:20:30.700Z'), '2024-05-01T10:20:31.000Z');
  // 03:00 in Rome is 01:00Z in summer (CEST, +2) and 02:00Z in winter (CET, +1)
  assert.equal(next('CRON_TZ=Europe/Rome 0 3 * * *', '2024-07-01T12:00:00Z'), '2024-07-02T01:00:00.000Z');
  assert.equal(next('TZ=Europe/Rome 0 3 * * *', '2024-01-01T12:00:00Z'), '2024-01-02T02:00:00.000Z');
  assert.equal(next('0 0 30 2 *', '2024-01-01T00:00:00Z'), undefined, 'February 30th never comes');
  assert.equal(next('61 * * * *', '2024-01-01T00:00:00Z'), undefined, 'invalid');
});
