import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MaxQuantity, QuantityError, parseByteSize, parseMilliQuantity, parseQuantity } from './quantity.ts';

const Ki = 1024n;
const Gi = 1024n ** 3n;

// [input, whole value as Quantity.Value() returns it]
const valid: [string | number, bigint][] = [
  ['0', 0n],
  ['1', 1n],
  ['1073741824', Gi],
  [1073741824, Gi],
  ['+5', 5n],
  ['-5', -5n],
  ['007', 7n],
  // binary SI
  ['1Ki', Ki],
  ['10Gi', 10n * Gi],
  ['512Mi', 512n * 1024n ** 2n],
  ['1Ti', 1024n ** 4n],
  ['1Pi', 1024n ** 5n],
  ['1Ei', 1n << 60n],
  ['7Ei', 7n << 60n],
  ['0.5Gi', Gi / 2n],
  ['1.5Gi', 1610612736n],
  ['.5Ki', 512n],
  ['0.1Ki', 103n], // 102.4 rounds up
  // decimal SI
  ['1k', 1000n],
  ['500M', 500000000n],
  ['1G', 1000000000n],
  ['2T', 2n * 10n ** 12n],
  ['1P', 10n ** 15n],
  ['1E', 10n ** 18n],
  ['1.5G', 1500000000n],
  ['5.G', 5000000000n], // ParseQuantity allows a bare trailing dot
  ['100m', 1n], // 0.1 rounds up to a whole unit
  ['1000m', 1n],
  ['1500m', 2n],
  ['1u', 1n],
  ['1n', 1n],
  ['0m', 0n],
  ['-100m', -1n], // away from zero, as Value() rounds
  // exponents
  ['1e9', 1000000000n],
  ['1E9', 1000000000n],
  ['1e+9', 1000000000n],
  ['1.5e3', 1500n],
  ['2e-3', 1n],
  ['1e0', 1n],
  ['12e-1', 2n],
  ['0e5000', 0n],
  ['1e-5000', 1n],
  [1e18, 10n ** 18n],
  [1e-7, 1n], // String(1e-7) is "1e-7"
  [0.5, 1n],
  // surrounding white space is trimmed, as UnmarshalJSON does
  [' 10Gi\n', 10n * Gi],
  // the largest value
  ['9223372036854775807', MaxQuantity],
];

for (const [input, want] of valid) {
  void test(`parseQuantity(${JSON.stringify(input)}) is ${want}`, () => {
    assert.equal(parseQuantity(input), want);
  });
}

// [input, what the message must say]
const invalid: [string | number, RegExp][] = [
  ['', /invalid quantity "": expected a number with an optional suffix/],
  ['ten gigs', /invalid quantity "ten gigs"/],
  ['Gi', /invalid quantity "Gi"/], // ParseQuantity would read 0
  ['.', /invalid quantity "\."/],
  ['1GiB', /invalid quantity "1GiB"/],
  ['1K', /invalid quantity "1K"/], // kilo is lower-case k
  ['1KB', /invalid quantity/],
  ['1 Gi', /invalid quantity "1 Gi"/],
  ['1e', /invalid quantity "1e"/],
  ['1e1.5', /invalid quantity "1e1\.5"/], // exponents are integers
  ['1Gi1', /invalid quantity/],
  ['0x10', /invalid quantity/],
  ['1,5Gi', /invalid quantity/],
  ['--1', /invalid quantity/],
  ['8Ei', /larger than the largest quantity Kubernetes holds \(9223372036854775807/],
  ['10E', /larger than the largest quantity/],
  ['1e19', /larger than the largest quantity/],
  ['1e5000', /larger than the largest quantity/],
  [Number.NaN, /invalid quantity NaN/],
  [Number.POSITIVE_INFINITY, /invalid quantity Infinity/],
];

for (const [input, message] of invalid) {
  void test(`parseQuantity(${JSON.stringify(String(input))}) is refused with a clear error`, () => {
    assert.throws(
      () => parseQuantity(input),
      (e: unknown) => e instanceof QuantityError && message.test(e.message) && !e.message.includes('\n'),
    );
  });
}

void test('parseByteSize names the field and refuses negative sizes', () => {
  assert.equal(parseByteSize('1e9'), 1000000000n);
  assert.equal(parseByteSize('0.5Gi'), Gi / 2n);
  assert.throws(
    () => parseByteSize('-1Gi', 'image size'),
    /^QuantityError: invalid image size "-1Gi": a size cannot be negative$/,
  );
  assert.throws(
    () => parseByteSize('ten', 'image size'),
    (e: unknown) =>
      e instanceof QuantityError && e.message.startsWith('invalid image size "ten": expected a number'),
  );
});

void test('parseMilliQuantity is Quantity.MilliValue(): CPU quantities in every valid form', () => {
  for (const [input, want] of [
    ['100m', 100n],
    ['1', 1000n],
    ['1.5', 1500n],
    ['1e3', 1000000n],
    ['0.0001', 1n], // rounded away from zero, as MilliValue()
    ['2k', 2000000n],
    ['1Ki', 1024000n],
  ] as const)
    assert.equal(parseMilliQuantity(input), want, input);
  assert.throws(() => parseMilliQuantity('lots'), QuantityError);
});
