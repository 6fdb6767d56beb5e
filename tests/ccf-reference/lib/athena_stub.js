'use strict'
// In-process replacements for the two AWS SDK v2 clients that CCF's
// ServiceWrapper calls on the Cost-and-Usage-Reports path: Athena
// (startQueryExecution, getQueryExecution, getQueryResults) and Glue (getTable,
// used to check whether the product_vcpu column exists). They answer with the
// rows produced by AthenaQueryEmulator, in the shape of the real API:
// GetQueryResults pages of at most 1000 rows, the first page starting with a
// header row, each cell as { VarCharValue: string }, and a NextToken while more
// pages follow. Every other AWS client handed to ServiceWrapper is a proxy that
// throws if used.

/** Athena's maximum page size for GetQueryResults. */
const ATHENA_PAGE_ROWS = 1000

/** Column names of CCF's SELECT, as Athena reports them (lowercased aliases). */
const BASE_RESULT_COLUMNS = ['timestamp', 'accountname', 'region', 'servicename', 'usagetype', 'usageunit', 'vcpus', 'usageamount', 'cost']

/** Wraps a value the way an AWS SDK v2 request object does: call .promise() to get it. */
const sdkRequest = (value) => ({ promise: async () => value })

/** A client object whose every method throws: proves that CCF does not use it. */
function forbiddenClient(name) {
  return new Proxy(
    {},
    {
      get(_target, property) {
        if (property === 'then') return undefined
        return () => {
          throw new Error(`ccf reference harness: unexpected call to AWS ${name}.${String(property)}`)
        }
      },
    },
  )
}

/**
 * Fake Athena client serving a fixed result set.
 * @param {string[][]} rows result rows (strings), without header
 * @param {string[]} tagColumns Athena tag column names appended to the header
 */
class FakeAthena {
  constructor(rows, tagColumns) {
    this.header = [...BASE_RESULT_COLUMNS, ...tagColumns]
    this.rows = rows
    this.queries = []
    this.pagesServed = 0
  }

  startQueryExecution(params) {
    this.queries.push(params.QueryString)
    return sdkRequest({ QueryExecutionId: `canopy-ccf-reference-${this.queries.length}` })
  }

  getQueryExecution(params) {
    return sdkRequest({
      QueryExecution: {
        QueryExecutionId: params.QueryExecutionId,
        Status: { State: 'SUCCEEDED' },
      },
    })
  }

  getQueryResults(params) {
    const all = this.rows.length + 1 // + header row
    const start = params.NextToken ? Number(params.NextToken) : 0
    const end = Math.min(start + ATHENA_PAGE_ROWS, all)
    const page = []
    for (let i = start; i < end; i++) {
      const cells = i === 0 ? this.header : this.rows[i - 1]
      page.push({ Data: cells.map((value) => ({ VarCharValue: value })) })
    }
    this.pagesServed++
    const response = {
      ResultSet: {
        Rows: page,
        ResultSetMetadata: { ColumnInfo: this.header.map((name) => ({ Name: name, Type: 'varchar' })) },
      },
    }
    if (end < all) response.NextToken = String(end)
    return sdkRequest(response)
  }
}

/** Fake Glue client describing a CUR table that has a product_vcpu column. */
class FakeGlue {
  getTable(params) {
    return sdkRequest({
      Table: {
        Name: params.Name,
        DatabaseName: params.DatabaseName,
        StorageDescriptor: {
          Columns: [
            'line_item_usage_start_date',
            'line_item_usage_account_id',
            'product_region',
            'line_item_product_code',
            'line_item_usage_type',
            'pricing_unit',
            'product_vcpu',
            'line_item_usage_amount',
            'line_item_blended_cost',
            'line_item_line_item_type',
          ].map((Name) => ({ Name, Type: 'string' })),
        },
      },
    })
  }
}

module.exports = { FakeAthena, FakeGlue, forbiddenClient, ATHENA_PAGE_ROWS }
