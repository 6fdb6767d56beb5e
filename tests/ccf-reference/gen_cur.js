#!/usr/bin/env node
'use strict'
// Writes a synthetic Athena-style CUR CSV for timing runs: hourly line items over
// one month (October 2023) for a few accounts and regions, mixing compute, GPU,
// burstable, storage, byte-hours, Lambda, networking, unknown and unsupported
// usage types, plus Tax/Credit/RIFee rows. Deterministic for a given seed.
//
// usage: node gen_cur.js ROWS [--seed N] > cur.csv

const USAGE = 'usage: node gen_cur.js ROWS [--seed N] > cur.csv'

/** Small deterministic PRNG (mulberry32). */
function prng(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const ACCOUNTS = ['111111111111', '222222222222', '333333333333', '444444444444', '555555555555']
const REGIONS = ['us-east-1', 'us-west-2', 'eu-west-1', 'eu-central-1', 'ap-southeast-2', 'eu-north-1']
// [product code, usage type (region prefix added for non us-east-1), pricing unit, product_vcpu, amount per row, price per unit]
const USAGE_TYPES = [
  ['AmazonEC2', 'BoxUsage:m5.xlarge', 'Hrs', '4', 1, 0.192],
  ['AmazonEC2', 'BoxUsage:m5.large', 'Hrs', '', 1, 0.096],
  ['AmazonEC2', 'BoxUsage:c5.2xlarge', 'Hrs', '8', 1, 0.34],
  ['AmazonEC2', 'BoxUsage:r5.4xlarge', 'Hrs', '16', 1, 1.008],
  ['AmazonEC2', 'BoxUsage:t3.micro', 'Hrs', '2', 1, 0.0104],
  ['AmazonEC2', 'BoxUsage:t3.large', 'Hrs', '2', 1, 0.0832],
  ['AmazonEC2', 'BoxUsage:m6g.large', 'Hrs', '2', 1, 0.077],
  ['AmazonEC2', 'BoxUsage:p3.2xlarge', 'Hrs', '8', 1, 3.06],
  ['AmazonEC2', 'BoxUsage:g4dn.xlarge', 'Hrs', '4', 1, 0.526],
  ['AmazonEC2', 'BoxUsage:c6i.metal', 'Hrs', '128', 1, 5.44],
  ['AmazonEC2', 'EBS:VolumeUsage.gp2', 'GB-Mo', '', 0.1369, 0.1],
  ['AmazonEC2', 'EBS:VolumeUsage.gp3', 'GB-Mo', '', 0.0684, 0.08],
  ['AmazonEC2', 'EBS:VolumeUsage.st1', 'GB-Mo', '', 0.6845, 0.045],
  ['AmazonEC2', 'EBS:SnapshotUsage', 'GB-Mo', '', 0.2, 0.05],
  ['AmazonEC2', 'DataTransfer-Regional-Bytes', 'GB', '', 1.7, 0.01],
  ['AmazonEC2', 'NatGateway-Hours', 'Hrs', '', 1, 0.045],
  ['AmazonEC2', 'NatGateway-Bytes', 'GB', '', 3.2, 0.045],
  ['AmazonEC2', 'HostBoxUsage:m5.metal', 'Hrs', '96', 1, 0],
  ['AmazonEC2', 'EBS:VolumeIOUsage', 'IOs', '', 120000, 0.00000005],
  ['AmazonRDS', 'InstanceUsage:db.r5.large', 'Hrs', '2', 1, 0.25],
  ['AmazonRDS', 'Multi-AZUsage:db.m5.xl', 'Hrs', '4', 1, 0.684],
  ['AmazonRDS', 'RDS:GP2-Storage', 'GB-Mo', '', 0.2738, 0.115],
  ['AmazonRDS', 'Aurora:ServerlessUsage', 'ACU-Hr', '', 2, 0.06],
  ['AmazonS3', 'TimedStorage-ByteHrs', 'GB-Mo', '', 13.7, 0.023],
  ['AmazonS3', 'Requests-Tier1', 'Requests', '', 1000, 0.000005],
  ['AmazonS3', 'DataTransfer-Out-Bytes', 'GB', '', 0.5, 0.09],
  ['AWSLambda', 'Lambda-GB-Second', 'Lambda-GB-Second', '', 3600, 0.0000166667],
  ['AWSLambda', 'Lambda-GB-Second-ARM', 'Lambda-GB-Second', '', 3600, 0.0000133334],
  ['AWSLambda', 'Request', 'Requests', '', 10000, 0.0000002],
  ['AmazonDynamoDB', 'TimedStorage-ByteHrs', 'GB-Mo', '', 1.37, 0.25],
  ['AmazonCloudWatch', 'CW:MetricMonitorUsage', 'Metrics', '', 0.0014, 0.3],
  ['AmazonECS', 'Fargate-vCPU-Hours:perCPU', 'hours', '', 0.5, 0.04048],
  ['AmazonECS', 'Fargate-GB-Hours', 'hours', '', 1, 0.004445],
  ['AmazonElastiCache', 'NodeUsage:cache.m5.large', 'NodeHour', '', 1, 0.156],
  ['AWSGlue', 'ETL-DPU-Hour', 'DPU-Hour', '', 0.25, 0.44],
  ['AmazonCloudFront', 'DataTransfer-Out-Bytes', 'GB', '', 2, 0.085],
]
const REGION_PREFIX = {
  'us-east-1': '', 'us-west-2': 'USW2-', 'eu-west-1': 'EU-', 'eu-central-1': 'EUC1-', 'ap-southeast-2': 'APS2-', 'eu-north-1': 'EUN1-',
}
const TEAMS = ['web', 'api', 'data', '']

function main() {
  const args = process.argv.slice(2)
  const rows = Number(args[0])
  if (!Number.isInteger(rows) || rows < 1) {
    process.stderr.write(`expected a positive row count, found ${args[0]}\n${USAGE}\n`)
    process.exit(2)
  }
  const seedAt = args.indexOf('--seed')
  const random = prng(seedAt === -1 ? 42 : Number(args[seedAt + 1]))
  const pick = (list) => list[Math.floor(random() * list.length)]
  const out = []
  const flush = () => {
    process.stdout.write(out.join(''))
    out.length = 0
  }
  out.push('identity_line_item_id,line_item_usage_start_date,line_item_usage_end_date,line_item_usage_account_id,line_item_line_item_type,line_item_product_code,line_item_usage_type,line_item_line_item_description,pricing_unit,product_region,product_vcpu,line_item_usage_amount,line_item_unblended_cost,line_item_blended_cost,resource_tags_user_team\n')
  for (let i = 0; i < rows; i++) {
    const day = 1 + Math.floor(random() * 31)
    const hour = Math.floor(random() * 24)
    const start = `2023-10-${String(day).padStart(2, '0')}T${String(hour).padStart(2, '0')}:00:00Z`
    const end = `2023-10-${String(day).padStart(2, '0')}T${String(hour).padStart(2, '0')}:59:59Z`
    const account = pick(ACCOUNTS)
    const region = pick(REGIONS)
    const [product, usageType, unit, vcpu, amount, price] = pick(USAGE_TYPES)
    const roll = random()
    const lineItemType = roll < 0.8 ? 'Usage' : roll < 0.9 ? 'DiscountedUsage' : roll < 0.96 ? 'SavingsPlanCoveredUsage' : roll < 0.98 ? 'Tax' : 'Credit'
    const usage = lineItemType === 'Tax' || lineItemType === 'Credit' ? 0 : amount * (0.5 + random())
    const cost = lineItemType === 'Credit' ? -1 : lineItemType === 'Tax' ? 0.5 : Math.round(usage * price * 1e8) / 1e8
    const description = `"${usageType} in ${region}, hour ${hour}"`
    out.push(`${i},${start},${end},${account},${lineItemType},${product},${REGION_PREFIX[region]}${usageType},${description},${unit},${region},${vcpu},${usage},${cost},${cost},${pick(TEAMS)}\n`)
    if (out.length >= 10000) flush()
  }
  flush()
}

main()
