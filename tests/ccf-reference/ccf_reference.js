#!/usr/bin/env node
'use strict'
// Runs Cloud Carbon Footprint's own AWS Cost-and-Usage-Reports estimator
// (@cloud-carbon-footprint/aws, pinned in package.json) over a CUR CSV and
// prints one JSON line per CCF result entry. Only the Athena boundary is
// replaced: the CSV is filtered and grouped as CCF's Athena query would, and the
// rows are served to CCF's unmodified ServiceWrapper/CostAndUsageReports through
// fake Athena and Glue clients. See README.md.
//
// usage: node ccf_reference.js [--tag KEY] [--group-by day|week|month|quarter|year] [--verbose] CUR.csv[.gz] > out.jsonl

process.noDeprecation = true

const { installNetworkGuard } = require('./lib/network_guard')
const { readCurCsv } = require('./lib/cur_csv')
const { AthenaQueryEmulator, checkCcfQuery } = require('./lib/athena_query')
const { FakeAthena } = require('./lib/athena_stub')
const { loadCcf, LogCollector, resetUnknownUsageRatios, buildCostAndUsageReports } = require('./lib/ccf_setup')
const { formatResults } = require('./lib/output')

const USAGE = 'usage: node ccf_reference.js [--tag KEY] [--group-by day|week|month|quarter|year] [--verbose] CUR.csv[.gz]'

/** Parses the command line; throws with the usage text on bad input. */
function parseArgs(argv) {
  const options = { tag: null, groupBy: 'day', verbose: false, input: null }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg === '--tag' || arg === '--group-by') {
      const value = argv[++i]
      if (value === undefined) throw new Error(`expected a value after ${arg}, found end of arguments\n${USAGE}`)
      if (arg === '--tag') options.tag = value
      else options.groupBy = value
    } else if (arg === '--verbose') {
      options.verbose = true
    } else if (arg === '--help' || arg === '-h') {
      process.stdout.write(`${USAGE}\n`)
      process.exit(0)
    } else if (arg.startsWith('--')) {
      throw new Error(`unknown option ${arg}\n${USAGE}`)
    } else if (options.input === null) {
      options.input = arg
    } else {
      throw new Error(`expected one CUR file, found a second one: ${arg}\n${USAGE}`)
    }
  }
  if (options.input === null) throw new Error(`expected a CUR CSV path, found none\n${USAGE}`)
  if (!['day', 'week', 'month', 'quarter', 'year'].includes(options.groupBy)) {
    throw new Error(`expected --group-by day, week, month, quarter or year, found ${options.groupBy}`)
  }
  return options
}

/**
 * CCF tag name for --tag KEY: a KEY without a scope prefix is a user tag
 * ("Team" -> "user:Team"); "user:Team" and "aws:createdBy" are used as given.
 */
function ccfTagName(key) {
  return key.includes(':') ? key : `user:${key}`
}

async function main() {
  const options = parseArgs(process.argv.slice(2))
  installNetworkGuard()

  const tagNames = options.tag === null ? [] : [ccfTagName(options.tag)]
  const logs = new LogCollector(options.verbose)
  const ccf = loadCcf(tagNames, logs)
  const { tagNameToAthenaColumn } = require('@cloud-carbon-footprint/aws/dist/lib/CostAndUsageReports')
  const tagColumns = tagNames.map(tagNameToAthenaColumn)

  const readStartedMs = Date.now()
  const query = new AthenaQueryEmulator(options.groupBy)
  await readCurCsv(options.input, tagColumns[0] || null, tagNameToAthenaColumn, (row, line) => query.add(row, line))
  const rows = query.resultRows()

  const readMs = Date.now() - readStartedMs
  const ccfStartedMs = Date.now()
  const fakeAthena = new FakeAthena(rows, tagColumns)
  resetUnknownUsageRatios(ccf.aws)
  const reports = buildCostAndUsageReports(ccf, fakeAthena)
  const start = new Date(`${query.minPeriod || '1970-01-01'}T00:00:00Z`)
  const end = new Date(`${query.maxPeriod || '1970-01-01'}T00:00:00Z`)
  const results = rows.length === 0 ? [] : await reports.getEstimates(start, end, options.groupBy)

  const ccfMs = Date.now() - ccfStartedMs
  for (const sql of fakeAthena.queries) checkCcfQuery(sql, options.groupBy, tagColumns)
  process.stdout.write(formatResults(results, tagNames[0] || null).map((line) => `${line}\n`).join(''))

  const skipped = [...query.skippedByLineItemType].map(([type, n]) => `${type || '(empty)'}=${n}`).join(' ')
  process.stderr.write(
    `ccf-reference: ${query.rowsRead} rows read, ${query.rowsKept} kept, skipped by line item type: ${skipped || 'none'}; ` +
      `${rows.length} athena rows in ${fakeAthena.pagesServed} pages; ${results.reduce((n, r) => n + r.serviceEstimates.length, 0)} ccf results; ` +
      `read+group ${readMs} ms, ccf ${ccfMs} ms\n`,
  )
  for (const [message, count] of logs.warnings) process.stderr.write(`ccf-reference: ${count} x ${message}\n`)
}

if (require.main === module) {
  main().catch((err) => {
    process.stderr.write(`ccf-reference: error: ${err.message}\n`)
    process.exit(2)
  })
}

module.exports = { parseArgs, ccfTagName }
