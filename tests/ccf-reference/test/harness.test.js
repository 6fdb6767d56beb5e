'use strict'
// Tests for the CCF reference harness. Run with `npm test` (node --test).

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('fs')
const os = require('os')
const path = require('path')
const { execFileSync, spawnSync } = require('child_process')

const ROOT = path.join(__dirname, '..')
const FIXTURE = path.join(ROOT, 'fixtures', 'small.csv')

/** Runs ccf_reference.js and returns stdout. */
function runReference(args) {
  return execFileSync(process.execPath, [path.join(ROOT, 'ccf_reference.js'), ...args], { cwd: os.tmpdir(), encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
}

const parseLines = (text) => text.trim().split('\n').map((l) => JSON.parse(l))
const find = (rows, period, account, region, service) =>
  rows.find((r) => r.period_start === period && r.account_id === account && r.region === region && r.service === service)

/** Asserts |actual - expected| <= rel * |expected|. */
function assertClose(actual, expected, rel, what) {
  assert.ok(Math.abs(actual - expected) <= rel * Math.abs(expected), `${what}: expected ${expected}, found ${actual}`)
}

test('small fixture reproduces the committed CCF output exactly', () => {
  assert.equal(runReference([FIXTURE]), fs.readFileSync(path.join(ROOT, 'fixtures', 'small.expected.jsonl'), 'utf8'))
  assert.equal(runReference(['--tag', 'team', FIXTURE]), fs.readFileSync(path.join(ROOT, 'fixtures', 'small.team.expected.jsonl'), 'utf8'))
})

test('managed-service instance names (issue 13 case 7): committed CCF output and hand checks', () => {
  const fixture = path.join(ROOT, 'fixtures', 'managed_suffix.csv')
  const out = runReference([fixture])
  assert.equal(out, fs.readFileSync(path.join(ROOT, 'fixtures', 'managed_suffix.expected.jsonl'), 'utf8'))
  const rows = parseLines(out)
  const row = (account, region, service) => find(rows, '2023-10-02', account, region, service)
  const PUE = 1.135
  const AVG_W = 0.74 + 0.5 * (3.5 - 0.74) // 2.12 W: a suffixed name is not in CCF's processor map
  const US_EAST_1 = 0.000379069
  const MEMORY_KWH_PER_GB_HOUR = 0.000392
  // t3.medium.search, 2 h, no product_vcpu: vCPUs and baseline of t3.medium (2 x 20/50 = 0.8 vCPU);
  // memory: t3's last size has 32 GB < 80.69 GB per chip -> none; embodied key `medium.search` -> none.
  const t3 = row('333333333301', 'us-east-1', 'AmazonES')
  assertClose(t3.energy_kwh, 0.8 * 2 * AVG_W * PUE / 1000, 1e-12, 't3.medium.search kWh')
  assertClose(t3.co2e_location_kg, 0.8 * 2 * AVG_W * PUE / 1000 * US_EAST_1 * 1000, 1e-12, 't3.medium.search kg')
  // Reserved r5.large.elasticsearch, 2 h, no product_vcpu: 2 vCPU from r5.large; memory with the
  // unknown-processor 80.69 GB per chip: (768 - 80.69) / (768 / 16) GB per hour.
  const r5 = row('333333333302', 'us-east-1', 'AmazonES')
  const r5Kwh = 2 * 2 * AVG_W * PUE / 1000 + ((768 - 80.69) / (768 / 16)) * 2 * MEMORY_KWH_PER_GB_HOUR * PUE
  assertClose(r5.energy_kwh, r5Kwh, 1e-12, 'r5.large.elasticsearch kWh')
  // t2.micro.elasticsearch: product_vcpu 1 ignored, 1 vCPU x 10/50 = 0.2 vCPU.
  assertClose(row('333333333304', 'us-east-1', 'AmazonES').energy_kwh, 0.2 * 2 * AVG_W * PUE / 1000, 1e-12, 't2.micro kWh')
  // UltraWarm is in no CCF table: 0 kWh, NaN CO2e (printed null), cost kept.
  const warm = row('333333333305', 'us-east-1', 'AmazonES')
  assert.deepEqual([warm.energy_kwh, warm.co2e_location_kg, warm.cost], [0, null, 0.238])
})

test('CCF values match hand computations from METHODOLOGY.md', () => {
  const rows = parseLines(fs.readFileSync(path.join(ROOT, 'fixtures', 'small.expected.jsonl'), 'utf8'))
  const PUE = 1.135
  const SKYLAKE_W = 0.65 + 0.5 * (4.26 - 0.65) // 2.455 W per vCPU at 50 %
  const US_EAST_1 = 0.000379069 // tCO2e per kWh
  const US_WEST_2 = 0.000322167
  const EU_WEST_1 = 0.0002786
  const MEMORY_KWH_PER_GB_HOUR = 0.000392

  // gp2, 3 GB-Mo in October: 3/1000 * 24 * 31 = 2.232 TB-h; x 1.2 Wh x PUE x replication 2 / 1000.
  const gp2 = find(rows, '2023-10-01', '111111111111', 'eu-west-1', 'AmazonEC2')
  assertClose(gp2.energy_kwh, 0.006079968, 1e-12, 'gp2 kWh')
  assertClose(gp2.co2e_location_kg, 0.006079968 * EU_WEST_1 * 1000, 1e-12, 'gp2 kg')
  assertClose(gp2.cost, 0.33, 1e-12, 'gp2 cost')

  // m5.xlarge, 6 h (4 vCPU, Skylake, ref m5.metal 96 vCPU / 384 GB / 1 chip / 81.32 GB per chip).
  const m5Compute = 24 * SKYLAKE_W * PUE / 1000 // 0.0668742
  const m5Memory = (384 - 81.32) * (16 / 384) * 6 * MEMORY_KWH_PER_GB_HOUR * PUE // 0.0336671
  assertClose(m5Memory, 0.0336671, 1e-6, 'm5.xlarge memory (METHODOLOGY section 4)')
  const m5EmbodiedT = 1.6103792 * 6 / (35040 * 96) // as coded: TE x hours / (lifespan x ref vCPUs)
  const m5 = find(rows, '2023-10-01', '111111111111', 'us-east-1', 'AmazonEC2')
  assertClose(m5.energy_kwh, m5Compute + m5Memory + m5EmbodiedT / US_EAST_1, 1e-12, 'm5.xlarge kWh incl. embodied kWh-equivalent')
  assertClose(m5.co2e_location_kg, ((m5Compute + m5Memory) * US_EAST_1 + m5EmbodiedT) * 1000, 1e-12, 'm5.xlarge kg')
  assertClose(m5.cost, 5 * 0.192 + 0.12, 1e-12, 'm5.xlarge blended cost (credit excluded)')

  // p3dn.24xlarge, 1 h: 96 vCPU x 2.455 W + 8 V100 x (35 + 0.5 x 271) W = 1599.68 W -> 1.8156368 kWh.
  const p3Compute = (96 * SKYLAKE_W + 8 * (35 + 0.5 * (306 - 35))) * PUE / 1000
  assertClose(p3Compute, 1.8156368, 1e-12, 'p3dn compute+GPU (METHODOLOGY section 2)')
  const p3Memory = (768 - 81.32) * 1 * MEMORY_KWH_PER_GB_HOUR * PUE
  const p3EmbodiedT = 3.5429488 / (35040 * 96)
  const p3 = find(rows, '2023-10-01', '222222222222', 'us-west-2', 'AmazonEC2')
  assertClose(p3.energy_kwh, p3Compute + p3Memory + p3EmbodiedT / US_WEST_2, 1e-12, 'p3dn kWh')

  // t3.micro, 24 h: 2 vCPU x 10/50 = 0.4 vCPU, Cascade Lake 0.64/3.97, no memory, ref t3 family 8 vCPU.
  const t3Compute = 0.4 * 24 * (0.64 + 0.5 * (3.97 - 0.64)) * PUE / 1000
  const t3EmbodiedT = 1.6103792 * 24 / (35040 * 8)
  const t3 = find(rows, '2023-10-01', '111111111111', 'us-west-2', 'AmazonEC2')
  assertClose(t3.energy_kwh, t3Compute + t3EmbodiedT / US_WEST_2, 1e-12, 't3.micro kWh')

  // S3 TimedStorage-ByteHrs: 100 (GB-Mo) divided by 2^40 as if bytes, HDD 0.65 Wh, replication 6.
  const s3 = find(rows, '2023-10-01', '111111111111', 'us-east-1', 'AmazonS3')
  assertClose(s3.energy_kwh, (100 / 2 ** 40) * 0.65 * PUE * 6 / 1000, 1e-12, 'S3 kWh')

  // Lambda: 36000 GB-s x86 (AWS average 0.74/3.5 W) + 7200 GB-s ARM (Graviton2 0.47/1.69 W), as vCPU-seconds.
  const lambda = find(rows, '2023-10-01', '111111111111', 'us-east-1', 'AWSLambda')
  const lambdaKwh = (10 * (0.74 + 0.5 * (3.5 - 0.74)) + 2 * (0.47 + 0.5 * (1.69 - 0.47))) * PUE / 1000
  assertClose(lambda.energy_kwh, lambdaKwh, 1e-12, 'Lambda kWh')

  // c6i.metal without product_vcpu: CCF reports 0 kWh and NaN CO2e (printed as null).
  const c6i = find(rows, '2023-10-02', '444444444444', 'us-east-1', 'AmazonEC2')
  assert.equal(c6i.energy_kwh, 0)
  assert.equal(c6i.co2e_location_kg, null)

  // Tax, Credit and RIFee rows and the HostBoxUsage row contribute no cost anywhere.
  const day2 = find(rows, '2023-10-02', '111111111111', 'us-east-1', 'AmazonEC2')
  assertClose(day2.cost, 0.6 + 0.2, 1e-12, 'day 2 cost without HostBoxUsage')
  assert.equal(rows.length, 12)
})

test('legacy CUR headers give the same result as Athena-style headers', () => {
  const legacyHeader = {
    line_item_usage_start_date: 'lineItem/UsageStartDate',
    line_item_usage_account_id: 'lineItem/UsageAccountId',
    line_item_line_item_type: 'lineItem/LineItemType',
    line_item_product_code: 'lineItem/ProductCode',
    line_item_usage_type: 'lineItem/UsageType',
    line_item_line_item_description: 'lineItem/LineItemDescription',
    pricing_unit: 'pricing/unit',
    product_region: 'product/region',
    product_vcpu: 'product/vcpu',
    line_item_usage_amount: 'lineItem/UsageAmount',
    line_item_unblended_cost: 'lineItem/UnblendedCost',
    line_item_blended_cost: 'lineItem/BlendedCost',
    resource_tags_user_team: 'resourceTags/user:team',
  }
  const [header, ...rest] = fs.readFileSync(FIXTURE, 'utf8').split('\n')
  const legacy = [header.split(',').map((h) => legacyHeader[h]).join(','), ...rest].join('\n')
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ccf-ref-')), 'legacy.csv')
  fs.writeFileSync(file, legacy)
  assert.equal(runReference(['--tag', 'team', file]), fs.readFileSync(path.join(ROOT, 'fixtures', 'small.team.expected.jsonl'), 'utf8'))
})

test('a missing required column is reported with its expected name', () => {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ccf-ref-')), 'bad.csv')
  fs.writeFileSync(file, 'line_item_usage_start_date,line_item_usage_account_id\n2023-10-01,1\n')
  const run = spawnSync(process.execPath, [path.join(ROOT, 'ccf_reference.js'), file], { encoding: 'utf8' })
  assert.equal(run.status, 2)
  assert.match(run.stderr, /missing required columns: expected product_region or product\/region/)
})

test('a NaN CO2e from an unresolvable compute row nulls the CO2e of its whole group', () => {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ccf-ref-')), 'nan.csv')
  fs.writeFileSync(
    file,
    [
      'line_item_usage_start_date,line_item_usage_account_id,line_item_line_item_type,line_item_product_code,line_item_usage_type,pricing_unit,product_region,product_vcpu,line_item_usage_amount,line_item_blended_cost',
      '2023-10-02T00:00:00Z,1,Usage,AmazonEC2,BoxUsage:c6i.metal,Hrs,us-east-1,,2,10.88',
      '2023-10-02T00:00:00Z,1,Usage,AmazonEC2,BoxUsage:m5.large,Hrs,us-east-1,2,2,0.2',
      '',
    ].join('\n'),
  )
  const [row] = parseLines(runReference([file]))
  // m5.large 2 h: compute 4 vCPU-h x 2.455 W x 1.135 / 1000, memory 6.3058333 GB x 2 h x 0.000392 x 1.135,
  // embodied 1.6103792 x 2 / (35040 x 96) t as kWh-equivalent at 0.000379069 t/kWh; c6i.metal adds 0 kWh.
  const expectedKwh = (4 * 2.455 * 1.135) / 1000 + (384 - 81.32) * (8 / 384) * 2 * 0.000392 * 1.135 + (1.6103792 * 2) / (35040 * 96) / 0.000379069
  assertClose(row.energy_kwh, expectedKwh, 1e-12, 'group kWh')
  assert.equal(row.co2e_location_kg, null)
  assertClose(row.cost, 11.08, 1e-12, 'group cost includes the NaN row')
})
