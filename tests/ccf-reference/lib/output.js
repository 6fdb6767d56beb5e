'use strict'
// Turns CCF's EstimationResult[] into JSON lines:
// {"period_start","account_id","region","service",["tag",]"energy_kwh","co2e_location_kg","cost"}
// CCF reports CO2e in metric tons; it is converted to kg (x 1000). NaN and
// infinities become null. Lines are sorted by (period_start, account_id,
// region, service, tag) so that outputs are stable and diffable.

const KG_PER_METRIC_TON = 1000

/** Finite number or null. */
const finiteOrNull = (x) => (typeof x === 'number' && Number.isFinite(x) ? x : null)

/** YYYY-MM-DD of a UTC Date. */
const dateOnly = (date) => date.toISOString().slice(0, 10)

/**
 * @param {object[]} results CCF EstimationResult objects
 * @param {string|null} tagName CCF tag name whose value to output, or null for no tag field
 * @returns {string[]} JSON lines
 */
function formatResults(results, tagName) {
  const records = []
  for (const result of results) {
    const periodStart = dateOnly(result.timestamp)
    for (const estimate of result.serviceEstimates) {
      const record = {
        period_start: periodStart,
        account_id: estimate.accountId,
        region: estimate.region,
        service: estimate.serviceName,
      }
      if (tagName !== null) {
        const value = estimate.tags ? estimate.tags[tagName] : undefined
        record.tag = value === undefined || value === null || value === '' ? null : value
      }
      record.energy_kwh = finiteOrNull(estimate.kilowattHours)
      const co2eKg = finiteOrNull(estimate.co2e)
      record.co2e_location_kg = co2eKg === null ? null : co2eKg * KG_PER_METRIC_TON
      record.cost = estimate.cost
      records.push(record)
    }
  }
  const sortKey = (r) => [r.period_start, r.account_id, r.region, r.service, r.tag === undefined || r.tag === null ? '' : r.tag]
  records.sort((a, b) => {
    const ka = sortKey(a)
    const kb = sortKey(b)
    for (let i = 0; i < ka.length; i++) {
      if (ka[i] < kb[i]) return -1
      if (ka[i] > kb[i]) return 1
    }
    return 0
  })
  return records.map((r) => JSON.stringify(r))
}

module.exports = { formatResults, KG_PER_METRIC_TON }
