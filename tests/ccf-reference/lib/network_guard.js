'use strict'
// Makes any attempt to open a network connection fail at once.
//
// The harness must never reach AWS, Electricity Maps or Google Cloud: the
// machine it runs on has no internet, so a stray call would hang, and a
// reference result that silently depended on a remote service would not be
// reproducible. Every outgoing TCP/TLS connection in Node goes through
// net.Socket.prototype.connect, so refusing there covers http, https, the
// AWS SDK and node-fetch alike.

const net = require('net')

/** Error thrown when something inside CCF tries to open a connection. */
class NetworkBlockedError extends Error {
  constructor(target) {
    super(`network access is disabled in the ccf reference harness (attempted: ${target})`)
    this.name = 'NetworkBlockedError'
  }
}

/** Replaces net.Socket#connect so that every connection attempt throws. Idempotent. */
function installNetworkGuard() {
  if (net.Socket.prototype.connect.__canopyGuard) return
  const guarded = function connect(...args) {
    const first = args[0]
    let target = 'unknown'
    if (first && typeof first === 'object') target = `${first.host || first.path || '?'}:${first.port || ''}`
    else if (first !== undefined) target = String(first)
    throw new NetworkBlockedError(target)
  }
  guarded.__canopyGuard = true
  net.Socket.prototype.connect = guarded
}

module.exports = { installNetworkGuard, NetworkBlockedError }
