'use strict'
// Loads Cloud Carbon Footprint's packages with a configuration that uses the
// Cost-and-Usage-Reports (Athena) path, no Electricity Maps token and no account
// names, and builds CostAndUsageReports exactly as CCF's AWSAccount
// getDataFromCostAndUsageReports does, except that the ServiceWrapper is given
// the in-process Athena/Glue fakes instead of AWS SDK clients.

const { FakeGlue, forbiddenClient } = require('./athena_stub')

/** Environment CCF's Config.js reads at load time (dotenv never overrides these). */
function ccfEnvironment(tagNames) {
  return {
    AWS_USE_BILLING_DATA: 'true',
    AWS_INCLUDE_ESTIMATES: 'true',
    AWS_ATHENA_DB_NAME: 'canopy_reference',
    AWS_ATHENA_DB_TABLE: 'cost_and_usage_report',
    AWS_ATHENA_QUERY_RESULT_LOCATION: 's3://canopy-reference-not-used/',
    AWS_ATHENA_REGION: 'us-east-1',
    AWS_ACCOUNTS: '[]',
    AWS_RESOURCE_TAG_NAMES: JSON.stringify(tagNames),
    ELECTRICITY_MAPS_TOKEN: '',
    LOGGING_MODE: '',
    CACHE_MODE: '',
    AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE: '1',
  }
}

/**
 * Collects CCF's log calls instead of letting winston print them to stdout and
 * write logs/*.log files in the working directory. Warnings and errors are
 * counted per distinct message and can be echoed to stderr.
 */
class LogCollector {
  constructor(echo) {
    this.echo = echo
    this.warnings = new Map()
  }

  record(level, label, message) {
    if (level === 'warn' || level === 'error') {
      const key = `${level} [${label}] ${message}`
      this.warnings.set(key, (this.warnings.get(key) || 0) + 1)
    }
    if (this.echo) process.stderr.write(`ccf ${level} [${label}] ${message}\n`)
  }

  /** Patches CCF's Logger class so every instance reports here. */
  attach(LoggerClass) {
    const collector = this
    LoggerClass.prototype.debug = function debug(message) {
      collector.record('debug', this.logLabel, message)
    }
    LoggerClass.prototype.info = function info(message) {
      collector.record('info', this.logLabel, message)
    }
    LoggerClass.prototype.warn = function warn(message) {
      collector.record('warn', this.logLabel, message)
    }
    LoggerClass.prototype.error = function error(message, err) {
      collector.record('error', this.logLabel, `${message}${err && err.stack ? err.stack : ''}`)
    }
  }
}

/**
 * Requires CCF's packages (after setting the environment) and returns what the
 * harness needs from them.
 * @param {string[]} tagNames CCF resource tag names, e.g. ['user:Team']
 * @param {LogCollector} logs
 */
function loadCcf(tagNames, logs) {
  Object.assign(process.env, ccfEnvironment(tagNames))
  const common = require('@cloud-carbon-footprint/common')
  const core = require('@cloud-carbon-footprint/core')
  const aws = require('@cloud-carbon-footprint/aws')
  logs.attach(common.Logger)

  // Config.js also reads /run/secrets/<NAME>; force the values that matter.
  const config = common.configLoader()
  config.ELECTRICITY_MAPS_TOKEN = ''
  config.LOGGING_MODE = ''
  config.AWS.USE_BILLING_DATA = true
  config.AWS.accounts = []
  config.AWS.RESOURCE_TAG_NAMES = tagNames
  common.setConfig(config)

  return { common, core, aws }
}

/**
 * Empties CCF's process-wide kWh-per-cost table used for unknown usage types,
 * as CCF's own tests do before each case.
 */
function resetUnknownUsageRatios(aws) {
  aws.AWS_CLOUD_CONSTANTS.KILOWATT_HOURS_BY_SERVICE_AND_USAGE_UNIT = { total: {} }
}

/**
 * new CostAndUsageReports(...) with the same estimators and constants as CCF's
 * AWSAccount.getDataFromCostAndUsageReports, and a ServiceWrapper whose Athena
 * and Glue clients are fakes (all other AWS clients throw when touched).
 */
function buildCostAndUsageReports({ core, aws }, fakeAthena) {
  const constants = aws.AWS_CLOUD_CONSTANTS
  const serviceWrapper = new aws.ServiceWrapper(
    forbiddenClient('CloudWatch'),
    forbiddenClient('CloudWatchLogs'),
    forbiddenClient('CostExplorer'),
    forbiddenClient('S3'),
    fakeAthena,
    new FakeGlue(),
  )
  return new aws.CostAndUsageReports(
    new core.ComputeEstimator(),
    new core.StorageEstimator(constants.SSDCOEFFICIENT),
    new core.StorageEstimator(constants.HDDCOEFFICIENT),
    new core.NetworkingEstimator(constants.NETWORKING_COEFFICIENT),
    new core.MemoryEstimator(constants.MEMORY_COEFFICIENT),
    new core.UnknownEstimator(constants.ESTIMATE_UNKNOWN_USAGE_BY),
    new core.EmbodiedEmissionsEstimator(constants.SERVER_EXPECTED_LIFESPAN),
    serviceWrapper,
  )
}

module.exports = { loadCcf, LogCollector, resetUnknownUsageRatios, buildCostAndUsageReports, ccfEnvironment }
