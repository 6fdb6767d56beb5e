#!/usr/bin/env node
'use strict'
// Compares two JSONL estimate files keyed by (period_start, account_id, region,
// service[, tag]): same key sets, energy_kwh and co2e_location_kg within a
// relative tolerance (null must match null), cost within 1e-9 relative.
//
// usage: node compare.js expected.jsonl actual.jsonl [--rel 1e-9]
// exit status: 0 all rows match, 1 any mismatch / missing / extra row, 2 bad input

const fs = require('fs')
const { compareJsonl } = require('./lib/compare_rows')

const USAGE = 'usage: node compare.js expected.jsonl actual.jsonl [--rel 1e-9]'
const COST_RELATIVE_TOLERANCE = 1e-9
const SHOWN = 20

function parseArgs(argv) {
  const files = []
  let rel = 1e-9
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--rel') {
      rel = Number(argv[++i])
      if (!(rel >= 0)) throw new Error(`expected a non-negative number after --rel, found ${argv[i]}\n${USAGE}`)
    } else if (argv[i].startsWith('--')) {
      throw new Error(`unknown option ${argv[i]}\n${USAGE}`)
    } else {
      files.push(argv[i])
    }
  }
  if (files.length !== 2) throw new Error(`expected two JSONL files, found ${files.length}\n${USAGE}`)
  return { expectedPath: files[0], actualPath: files[1], rel }
}

function main() {
  let args
  let report
  try {
    args = parseArgs(process.argv.slice(2))
    report = compareJsonl(fs.readFileSync(args.expectedPath, 'utf8'), fs.readFileSync(args.actualPath, 'utf8'), {
      rel: args.rel,
      costRel: COST_RELATIVE_TOLERANCE,
    })
  } catch (err) {
    process.stderr.write(`compare: error: ${err.message}\n`)
    process.exit(2)
  }
  const { compared, missing, extra, mismatches } = report
  const problems = [
    ...missing.map((key) => `missing in actual: ${key}`),
    ...extra.map((key) => `extra in actual:   ${key}`),
    ...mismatches.map(
      (m) => `${m.key} ${m.field}: expected ${m.expected} actual ${m.actual}` + (m.relative === null ? ' (null vs number)' : ` (rel ${m.relative.toExponential(3)})`),
    ),
  ]
  const mismatchCount = missing.length + extra.length + mismatches.length
  process.stdout.write(`${compared} rows compared, ${mismatchCount} mismatches (${missing.length} missing, ${extra.length} extra, ${mismatches.length} values; rel tolerance ${args.rel})\n`)
  for (const line of problems.slice(0, SHOWN)) process.stdout.write(`  ${line}\n`)
  if (problems.length > SHOWN) process.stdout.write(`  ... ${problems.length - SHOWN} more\n`)
  process.exit(mismatchCount === 0 ? 0 : 1)
}

main()
