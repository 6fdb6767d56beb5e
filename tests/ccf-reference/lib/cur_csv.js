'use strict'
// Streaming reader for Cost and Usage Report CSV files.
//
// Accepts the Athena-style snake_case header (line_item_usage_type, ...) and
// the legacy CUR header (lineItem/UsageType, ...). Only the columns that CCF's
// Athena query touches are extracted; every other column is ignored. Files
// ending in .gz are decompressed on the fly.

const fs = require('fs')
const readline = require('readline')
const zlib = require('zlib')

/** Logical column name -> accepted header spellings (Athena first, then legacy CUR). */
const COLUMN_ALIASES = {
  usageStartDate: ['line_item_usage_start_date', 'lineItem/UsageStartDate'],
  accountId: ['line_item_usage_account_id', 'lineItem/UsageAccountId'],
  region: ['product_region', 'product/region'],
  productCode: ['line_item_product_code', 'lineItem/ProductCode'],
  usageType: ['line_item_usage_type', 'lineItem/UsageType'],
  pricingUnit: ['pricing_unit', 'pricing/unit'],
  vcpu: ['product_vcpu', 'product/vcpu'],
  usageAmount: ['line_item_usage_amount', 'lineItem/UsageAmount'],
  blendedCost: ['line_item_blended_cost', 'lineItem/BlendedCost'],
  lineItemType: ['line_item_line_item_type', 'lineItem/LineItemType'],
}

/** Columns whose absence makes the file unusable. product_vcpu is optional. */
const REQUIRED_COLUMNS = Object.keys(COLUMN_ALIASES).filter((name) => name !== 'vcpu')

/**
 * Splits one CSV record into fields (RFC 4180: double quotes, "" escapes).
 * Scans with indexOf rather than per character; records without quotes take a plain split.
 */
function splitCsvRecord(record) {
  if (!record.includes('"')) return record.split(',')
  const fields = []
  const n = record.length
  let i = 0
  for (;;) {
    let value = ''
    if (record.charCodeAt(i) === 34 /* " */) {
      let j = i + 1
      for (;;) {
        const q = record.indexOf('"', j)
        if (q === -1) {
          value += record.slice(j)
          i = n
          break
        }
        if (record.charCodeAt(q + 1) === 34) {
          value += record.slice(j, q + 1)
          j = q + 2
          continue
        }
        value += record.slice(j, q)
        i = q + 1
        break
      }
    }
    const comma = record.indexOf(',', i)
    if (comma === -1) {
      fields.push(value + record.slice(i))
      return fields
    }
    fields.push(value + record.slice(i, comma))
    i = comma + 1
  }
}

/** Number of double-quote characters in a string (odd = a quoted field continues on the next line). */
function countQuotes(text) {
  let n = 0
  for (let i = text.indexOf('"'); i !== -1; i = text.indexOf('"', i + 1)) n++
  return n
}

/**
 * Resolves header names to column indexes.
 * @param {string[]} header
 * @param {string|null} tagColumn Athena-style tag column (resource_tags_user_team) or null
 * @param {(tagName: string) => string} tagNameToColumn converts a legacy tag name (user:Team) to its Athena column
 * @returns {{[name: string]: number}} index per logical column; -1 when an optional column is absent
 */
function resolveColumns(header, tagColumn, tagNameToColumn) {
  const trimmed = header.map((h) => h.trim().replace(/^\uFEFF/, ''))
  const indexes = {}
  for (const [name, aliases] of Object.entries(COLUMN_ALIASES)) {
    indexes[name] = trimmed.findIndex((h) => aliases.includes(h))
  }
  const missing = REQUIRED_COLUMNS.filter((name) => indexes[name] === -1)
  if (missing.length > 0) {
    const expected = missing.map((name) => COLUMN_ALIASES[name].join(' or ')).join(', ')
    throw new Error(`cur csv header is missing required columns: expected ${expected}; found ${trimmed.length} columns`)
  }
  indexes.tag = -1
  if (tagColumn) {
    indexes.tag = trimmed.findIndex(
      (h) => h === tagColumn || (h.startsWith('resourceTags/') && tagNameToColumn(h.slice('resourceTags/'.length)) === tagColumn),
    )
    if (indexes.tag === -1) {
      throw new Error(`cur csv header has no tag column: expected ${tagColumn}; found none among ${trimmed.length} columns`)
    }
  }
  return indexes
}

/**
 * Reads a CUR CSV and calls onRow(row, lineNumber) for each data record, where row
 * holds the raw strings of the columns CCF uses. Returns the number of data records.
 * A legacy header resourceTags/user:Team matches tagColumn when tagNameToColumn('user:Team') equals it.
 */
async function readCurCsv(path, tagColumn, tagNameToColumn, onRow) {
  let input = fs.createReadStream(path)
  if (path.endsWith('.gz')) input = input.pipe(zlib.createGunzip())
  const lines = readline.createInterface({ input, crlfDelay: Infinity })
  let columns = null
  let pending = null
  let pendingQuotes = 0
  let lineNumber = 0
  let records = 0
  for await (const line of lines) {
    lineNumber++
    let record = line
    if (pending !== null) {
      record = `${pending}\n${line}`
      pendingQuotes += countQuotes(line)
    } else {
      pendingQuotes = countQuotes(line)
    }
    if (pendingQuotes % 2 === 1) {
      pending = record
      continue
    }
    pending = null
    if (columns === null) {
      columns = resolveColumns(splitCsvRecord(record), tagColumn, tagNameToColumn)
      continue
    }
    if (record === '') continue
    const f = splitCsvRecord(record)
    records++
    onRow(
      {
        usageStartDate: f[columns.usageStartDate] ?? '',
        accountId: f[columns.accountId] ?? '',
        region: f[columns.region] ?? '',
        productCode: f[columns.productCode] ?? '',
        usageType: f[columns.usageType] ?? '',
        pricingUnit: f[columns.pricingUnit] ?? '',
        vcpu: columns.vcpu === -1 ? '' : f[columns.vcpu] ?? '',
        usageAmount: f[columns.usageAmount] ?? '',
        blendedCost: f[columns.blendedCost] ?? '',
        lineItemType: f[columns.lineItemType] ?? '',
        tag: columns.tag === -1 ? null : f[columns.tag] ?? '',
      },
      lineNumber,
    )
  }
  if (pending !== null) throw new Error(`cur csv ends inside a quoted field: expected a closing quote, found end of file at line ${lineNumber}`)
  if (columns === null) throw new Error(`cur csv is empty: expected a header line, found nothing in ${path}`)
  return records
}

module.exports = { readCurCsv, splitCsvRecord, resolveColumns, COLUMN_ALIASES }
