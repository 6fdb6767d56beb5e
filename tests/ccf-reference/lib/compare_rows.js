'use strict'
// Compares two sets of estimate rows (CCF reference vs Canopy) keyed by
// (period_start, account_id, region, service[, tag]).

/** Relative difference |a - b| / max(|a|, |b|); 0 when both are 0. */
function relativeDifference(a, b) {
  if (a === b) return 0
  const scale = Math.max(Math.abs(a), Math.abs(b))
  return Math.abs(a - b) / scale
}

/**
 * YYYY-MM-DD for a row's period: accepts period_start as a date, an RFC 3339
 * timestamp (UTC), or period_start_unix_s.
 */
function periodOf(row, where) {
  if (typeof row.period_start === 'string') {
    if (/^\d{4}-\d{2}-\d{2}$/.test(row.period_start)) return row.period_start
    const ms = Date.parse(row.period_start)
    if (!Number.isNaN(ms)) return new Date(ms).toISOString().slice(0, 10)
  }
  if (typeof row.period_start_unix_s === 'number') return new Date(row.period_start_unix_s * 1000).toISOString().slice(0, 10)
  throw new Error(`${where}: expected period_start (YYYY-MM-DD or RFC 3339) or period_start_unix_s, found ${JSON.stringify(row.period_start ?? row.period_start_unix_s)}`)
}

/**
 * Parses JSON lines into a Map key -> row. Throws on malformed lines and on
 * duplicate keys (a duplicate means the file was grouped more finely, e.g. by usage type).
 */
function indexRows(text, name) {
  const rows = new Map()
  let withTag = false
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return
    const where = `${name}:${i + 1}`
    let row
    try {
      row = JSON.parse(line)
    } catch (err) {
      throw new Error(`${where}: expected a JSON object, found ${JSON.stringify(line.slice(0, 80))}`)
    }
    if ('tag' in row) withTag = true
    const key = JSON.stringify([periodOf(row, where), row.account_id, row.region, row.service, row.tag ?? null])
    if (rows.has(key)) throw new Error(`${where}: duplicate key ${key}; expected one row per (period_start, account_id, region, service, tag)`)
    rows.set(key, row)
  })
  return { rows, withTag }
}

/** Compares one numeric field; returns a mismatch description or null. */
function compareField(field, expected, actual, tolerance) {
  const e = expected[field]
  const a = actual[field]
  const eNull = e === null || e === undefined
  const aNull = a === null || a === undefined
  if (eNull || aNull) {
    if (eNull && aNull) return null
    return { field, expected: eNull ? null : e, actual: aNull ? null : a, relative: null }
  }
  const rel = relativeDifference(e, a)
  if (rel <= tolerance) return null
  return { field, expected: e, actual: a, relative: rel }
}

/**
 * @param {string} expectedText JSON lines (reference)
 * @param {string} actualText JSON lines (candidate)
 * @param {{rel: number, costRel: number}} tolerances
 * @returns {{compared: number, missing: string[], extra: string[], mismatches: object[]}}
 */
function compareJsonl(expectedText, actualText, { rel, costRel }) {
  const expected = indexRows(expectedText, 'expected')
  const actual = indexRows(actualText, 'actual')
  if (expected.withTag !== actual.withTag) {
    throw new Error(`expected both files to carry a tag field or neither; found tag in ${expected.withTag ? 'expected' : 'actual'} only`)
  }
  const missing = [...expected.rows.keys()].filter((k) => !actual.rows.has(k))
  const extra = [...actual.rows.keys()].filter((k) => !expected.rows.has(k))
  const mismatches = []
  let compared = 0
  for (const [key, e] of expected.rows) {
    const a = actual.rows.get(key)
    if (!a) continue
    compared++
    for (const [field, tolerance] of [
      ['energy_kwh', rel],
      ['co2e_location_kg', rel],
      ['cost', costRel],
    ]) {
      const m = compareField(field, e, a, tolerance)
      if (m) mismatches.push({ key, ...m })
    }
  }
  return { compared, missing, extra, mismatches }
}

module.exports = { compareJsonl, relativeDifference, indexRows }
