'use strict'
// Reproduces, in memory, the Athena query that CCF's CostAndUsageReports.getUsage
// sends: keep line item types Usage / DiscountedUsage / SavingsPlanCoveredUsage,
// group by the truncated usage start date, account, product_region, product code,
// usage type, pricing unit, product_vcpu and the configured tag columns, and sum
// usage amount and blended cost.

/** Line item types CCF's query keeps (CostAndUsageTypes.LINE_ITEM_TYPES). */
const KEPT_LINE_ITEM_TYPES = new Set(['Usage', 'DiscountedUsage', 'SavingsPlanCoveredUsage'])

const PLAIN_TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?Z?$/

/**
 * UTC calendar date (year, month 1-12, day) of a CUR usage start timestamp.
 * Athena stores line_item_usage_start_date as a UTC timestamp; strings without an
 * offset are taken as UTC, strings with one are converted.
 */
function utcDateOf(text, lineNumber) {
  const trimmed = text.trim()
  const plain = PLAIN_TIMESTAMP.exec(trimmed)
  if (plain) return { y: Number(plain[1]), m: Number(plain[2]), d: Number(plain[3]) }
  const ms = Date.parse(trimmed)
  if (Number.isNaN(ms)) {
    throw new Error(`line ${lineNumber}: expected an ISO-8601 usage start date, found ${JSON.stringify(text)}`)
  }
  const date = new Date(ms)
  return { y: date.getUTCFullYear(), m: date.getUTCMonth() + 1, d: date.getUTCDate() }
}

const pad2 = (n) => String(n).padStart(2, '0')
const isoDate = (y, m, d) => `${String(y).padStart(4, '0')}-${pad2(m)}-${pad2(d)}`

/**
 * DATE(DATE_TRUNC(granularity, ts)) as Athena prints it (YYYY-MM-DD).
 * Weeks start on Monday, as in Presto/Trino.
 */
function truncateDate({ y, m, d }, granularity) {
  switch (granularity) {
    case 'day':
      return isoDate(y, m, d)
    case 'week': {
      const ms = Date.UTC(y, m - 1, d)
      const weekday = (new Date(ms).getUTCDay() + 6) % 7 // Monday = 0
      const monday = new Date(ms - weekday * 86400000)
      return isoDate(monday.getUTCFullYear(), monday.getUTCMonth() + 1, monday.getUTCDate())
    }
    case 'month':
      return isoDate(y, m, 1)
    case 'quarter':
      return isoDate(y, Math.floor((m - 1) / 3) * 3 + 1, 1)
    case 'year':
      return isoDate(y, 1, 1)
    default:
      throw new Error(`expected a grouping of day, week, month, quarter or year, found ${JSON.stringify(granularity)}`)
  }
}

/** Parses a DOUBLE column; an empty cell counts as 0. */
function parseAmount(text, column, lineNumber) {
  if (text === '') return 0
  const value = Number(text)
  if (Number.isNaN(value)) {
    throw new Error(`line ${lineNumber}: expected a number in ${column}, found ${JSON.stringify(text)}`)
  }
  return value
}

/**
 * Accumulates CUR rows into the groups the Athena query would return.
 * Groups keep first-seen order; sums are taken in file order.
 */
class AthenaQueryEmulator {
  /** @param {string} granularity one of day, week, month, quarter, year */
  constructor(granularity) {
    this.granularity = granularity
    this.groups = new Map()
    this.rowsRead = 0
    this.rowsKept = 0
    this.skippedByLineItemType = new Map()
    this.minPeriod = null
    this.maxPeriod = null
  }

  /** Adds one raw CUR row (strings, as produced by readCurCsv). */
  add(row, lineNumber) {
    this.rowsRead++
    if (!KEPT_LINE_ITEM_TYPES.has(row.lineItemType)) {
      this.skippedByLineItemType.set(row.lineItemType, (this.skippedByLineItemType.get(row.lineItemType) || 0) + 1)
      return
    }
    this.rowsKept++
    const period = truncateDate(utcDateOf(row.usageStartDate, lineNumber), this.granularity)
    if (this.minPeriod === null || period < this.minPeriod) this.minPeriod = period
    if (this.maxPeriod === null || period > this.maxPeriod) this.maxPeriod = period
    const keyFields = [period, row.accountId, row.region, row.productCode, row.usageType, row.pricingUnit, row.vcpu]
    if (row.tag !== null) keyFields.push(row.tag)
    const key = keyFields.join('\u0001')
    const usage = parseAmount(row.usageAmount, 'usage amount', lineNumber)
    const cost = parseAmount(row.blendedCost, 'blended cost', lineNumber)
    const group = this.groups.get(key)
    if (group) {
      group.usageAmount += usage
      group.cost += cost
    } else {
      this.groups.set(key, { keyFields, usageAmount: usage, cost })
    }
  }

  /**
   * Result rows in the column order of CCF's SELECT: timestamp, accountName, region,
   * serviceName, usageType, usageUnit, vCpus, usageAmount, cost, then one per tag.
   * All values are strings, as Athena's GetQueryResults returns them.
   */
  resultRows() {
    const rows = []
    for (const { keyFields, usageAmount, cost } of this.groups.values()) {
      const [period, accountId, region, productCode, usageType, pricingUnit, vcpu, ...tags] = keyFields
      rows.push([period, accountId, region, productCode, usageType, pricingUnit, vcpu, String(usageAmount), String(cost), ...tags])
    }
    return rows
  }
}

/**
 * Checks that the SQL CCF sent groups and filters exactly as this emulation does,
 * so a CCF version with a different query fails loudly instead of silently
 * diverging. Throws naming the missing fragment.
 */
function checkCcfQuery(sql, granularity, tagColumns) {
  const flat = sql.replace(/\s+/g, ' ').trim()
  const fail = (expected) => {
    throw new Error(`ccf's athena query differs from the emulation: expected ${JSON.stringify(expected)}, found query ${JSON.stringify(flat)}`)
  }
  const groupBy = [
    `DATE(DATE_TRUNC('${granularity}', line_item_usage_start_date))`,
    'line_item_usage_account_id',
    'product_region',
    'line_item_product_code',
    'line_item_usage_type',
    'pricing_unit',
    'product_vcpu',
    ...tagColumns,
  ].join(', ')
  if (!flat.endsWith(`GROUP BY ${groupBy}`)) fail(`... GROUP BY ${groupBy}`)
  const fragments = [
    `line_item_line_item_type IN ('${[...KEPT_LINE_ITEM_TYPES].join("', '")}')`,
    'SUM(line_item_usage_amount) as usageAmount',
    'SUM(line_item_blended_cost) as cost',
  ]
  for (const fragment of fragments) if (!flat.includes(fragment)) fail(fragment)
}

module.exports = { AthenaQueryEmulator, checkCcfQuery, truncateDate, utcDateOf, KEPT_LINE_ITEM_TYPES }
