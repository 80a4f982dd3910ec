import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSchedule } from './schedule.ts';

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
