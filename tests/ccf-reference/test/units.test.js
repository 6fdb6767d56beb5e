'use strict'
// Unit tests for the harness's own modules (CSV reading, query emulation,
// Athena fake with CCF's real ServiceWrapper pagination, comparison, network guard).

process.noDeprecation = true
process.env.AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE = '1'
const test = require('node:test')
const assert = require('node:assert/strict')
const http = require('http')

const { splitCsvRecord } = require('../lib/cur_csv')
const { AthenaQueryEmulator, truncateDate } = require('../lib/athena_query')
const { FakeAthena, FakeGlue, forbiddenClient } = require('../lib/athena_stub')
const { compareJsonl, relativeDifference } = require('../lib/compare_rows')
const { installNetworkGuard } = require('../lib/network_guard')

test('CSV records with quotes, escaped quotes and commas split correctly', () => {
  assert.deepEqual(splitCsvRecord('a,"b, c","d ""e""",'), ['a', 'b, c', 'd "e"', ''])
  assert.deepEqual(splitCsvRecord('1,2,3'), ['1', '2', '3'])
})

test('date truncation follows Athena DATE_TRUNC', () => {
  const date = { y: 2023, m: 10, d: 5 } // a Thursday
  assert.equal(truncateDate(date, 'day'), '2023-10-05')
  assert.equal(truncateDate(date, 'week'), '2023-10-02')
  assert.equal(truncateDate(date, 'month'), '2023-10-01')
  assert.equal(truncateDate(date, 'quarter'), '2023-10-01')
  assert.equal(truncateDate({ y: 2023, m: 1, d: 1 }, 'week'), '2022-12-26')
})

test('query emulation filters line item types and sums per group', () => {
  const q = new AthenaQueryEmulator('day')
  const row = (over) => ({
    usageStartDate: '2023-10-01T05:00:00Z', accountId: '1', region: 'us-east-1', productCode: 'AmazonEC2',
    usageType: 'BoxUsage:m5.large', pricingUnit: 'Hrs', vcpu: '2', usageAmount: '1.5', blendedCost: '0.25',
    lineItemType: 'Usage', tag: null, ...over,
  })
  q.add(row({}), 2)
  q.add(row({ usageStartDate: '2023-10-01 23:00:00.000', lineItemType: 'DiscountedUsage', usageAmount: '2.5' }), 3)
  q.add(row({ lineItemType: 'Tax' }), 4)
  q.add(row({ vcpu: '' }), 5)
  q.add(row({ usageStartDate: '2023-10-02T00:00:00+02:00' }), 6) // 2023-10-01T22:00Z
  assert.equal(q.rowsRead, 5)
  assert.equal(q.rowsKept, 4)
  assert.equal(q.skippedByLineItemType.get('Tax'), 1)
  assert.deepEqual(q.resultRows(), [
    ['2023-10-01', '1', 'us-east-1', 'AmazonEC2', 'BoxUsage:m5.large', 'Hrs', '2', '5.5', '0.75'],
    ['2023-10-01', '1', 'us-east-1', 'AmazonEC2', 'BoxUsage:m5.large', 'Hrs', '', '1.5', '0.25'],
  ])
  assert.throws(() => q.add(row({ usageAmount: 'abc' }), 9), /line 9: expected a number in usage amount, found "abc"/)
})

test("CCF's real ServiceWrapper pages through the fake Athena results", async () => {
  const { ServiceWrapper } = require('@cloud-carbon-footprint/aws')
  const rows = Array.from({ length: 2500 }, (_, i) => ['2023-10-01', String(i), 'r', 's', 'u', 'Hrs', '', '1', '1'])
  const athena = new FakeAthena(rows, [])
  const wrapper = new ServiceWrapper(forbiddenClient('CloudWatch'), null, null, null, athena, new FakeGlue())
  const pages = await wrapper.getAthenaQueryResultSets({ QueryExecutionId: 'q' })
  assert.equal(pages.length, 3)
  const all = pages.flatMap((p) => p.ResultSet.Rows)
  assert.equal(all.length, 2501)
  assert.equal(all[0].Data[0].VarCharValue, 'timestamp')
  assert.equal(all[2500].Data[1].VarCharValue, '2499')
  assert.throws(() => forbiddenClient('S3').getObject({}), /unexpected call to AWS S3.getObject/)
})

test('comparison reports value mismatches, null against number, and key differences', () => {
  const line = (kwh, kg, cost, account = '1') =>
    JSON.stringify({ period_start: '2023-10-01', account_id: account, region: 'r', service: 's', energy_kwh: kwh, co2e_location_kg: kg, cost })
  const expected = [line(1, 2, 3), line(5, null, 1, '2')].join('\n')
  const same = compareJsonl(expected, [line(1 + 1e-12, 2, 3), line(5, null, 1, '2')].join('\n'), { rel: 1e-9, costRel: 1e-9 })
  assert.deepEqual([same.compared, same.mismatches.length, same.missing.length, same.extra.length], [2, 0, 0, 0])
  const diff = compareJsonl(expected, [line(1.001, 2, 3), line(5, 0, 1, '2'), line(1, 1, 1, '3')].join('\n'), { rel: 1e-9, costRel: 1e-9 })
  assert.equal(diff.mismatches.length, 2)
  assert.equal(diff.mismatches[0].field, 'energy_kwh')
  assertCloseRel(diff.mismatches[0].relative, 0.001 / 1.001)
  assert.equal(diff.mismatches[1].field, 'co2e_location_kg')
  assert.equal(diff.mismatches[1].relative, null)
  assert.equal(diff.extra.length, 1)
  assert.equal(relativeDifference(0, 0), 0)
  // unix-seconds period form is accepted for the candidate file
  const unix = JSON.stringify({ period_start_unix_s: 1696118400, account_id: '1', region: 'r', service: 's', energy_kwh: 1, co2e_location_kg: 2, cost: 3 })
  assert.equal(compareJsonl(line(1, 2, 3), unix, { rel: 1e-9, costRel: 1e-9 }).compared, 1)
})

function assertCloseRel(actual, expected) {
  assert.ok(Math.abs(actual - expected) <= 1e-12, `expected ${expected}, found ${actual}`)
}

test('network guard refuses outgoing connections', () => {
  installNetworkGuard()
  assert.throws(() => http.get('http://127.0.0.1:9/'), /network access is disabled/)
})

test("the emulation's GROUP BY check accepts CCF's query and rejects a different one", () => {
  const { checkCcfQuery } = require('../lib/athena_query')
  const sql = `SELECT x, SUM(line_item_usage_amount) as usageAmount,
      SUM(line_item_blended_cost) as cost FROM t
      WHERE line_item_line_item_type IN ('Usage', 'DiscountedUsage', 'SavingsPlanCoveredUsage')
      GROUP BY DATE(DATE_TRUNC('day', line_item_usage_start_date)), line_item_usage_account_id, product_region, line_item_product_code, line_item_usage_type, pricing_unit, product_vcpu, resource_tags_user_team`
  checkCcfQuery(sql, 'day', ['resource_tags_user_team'])
  assert.throws(() => checkCcfQuery(sql, 'day', []), /differs from the emulation/)
  assert.throws(() => checkCcfQuery(sql.replace('product_vcpu, ', ''), 'day', ['resource_tags_user_team']), /differs from the emulation/)
})
