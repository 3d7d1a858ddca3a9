/** A node's identity (id, address, port) from what it is given: the pod name, or `<ip>-<port>`. */
import { networkInterfaces } from 'node:os'

/** Where a node's id came from: given, or made of its address. */
export type NodeIdSource = 'option' | 'ip-port'

/** A pod's identity as other nodes and operators see it. */
export interface NodeIdentity {
  /** Readable, never hashed: `wsc-0` maps to pod `wsc-0`. */
  nodeId: string
  source: NodeIdSource
  /** The address other nodes and operators use to reach this node. */
  ip: string
  /** The HTTP port; `undefined` until known when it comes from the listen port. */
  port: number | undefined
}

export interface NodeIdentityInput {
  /** An explicit id (`server.node_id`: the pod name); empty or absent: `<ip>-<port>`. */
  nodeId?: string | undefined
  /** `server.node_ip`; empty or absent: the first non-internal IPv4. */
  nodeIp?: string | undefined
  /** `server.node_port`; 0 or absent: the listen port. */
  nodePort?: number | undefined
  /** The port the HTTP server listens on, once known. */
  listenPort?: number | undefined
  interfaces?: ReturnType<typeof networkInterfaces>
}

function nonEmpty (value: string | undefined): string | undefined {
  const trimmed = value?.trim()
  return trimmed === undefined || trimmed === '' ? undefined : trimmed
}

/** The first non-internal IPv4 address of this host, or 127.0.0.1 when there is none. */
export function firstExternalIPv4 (interfaces: ReturnType<typeof networkInterfaces> = networkInterfaces()): string {
  for (const addresses of Object.values(interfaces)) {
    for (const address of addresses ?? []) {
      if (address.family === 'IPv4' && !address.internal) return address.address
    }
  }
  return '127.0.0.1'
}

/**
 * Resolves the node id from what it is given, nothing else: the explicit id, else `<ip>-<port>` (ip
 * given or the first non-internal IPv4; port given or the listen port). Returns `undefined` only when
 * the id needs a port that is not known yet (call again once the server listens). The port may stay
 * `undefined` with an explicit id: it is filled in once the server listens.
 */
export function resolveNodeIdentity (input: NodeIdentityInput = {}): NodeIdentity | undefined {
  const ip = nonEmpty(input.nodeIp) ?? firstExternalIPv4(input.interfaces)
  const port = input.nodePort !== undefined && input.nodePort !== 0 ? input.nodePort : input.listenPort
  const nodeId = nonEmpty(input.nodeId)
  if (nodeId !== undefined) return { nodeId, source: 'option', ip, port }
  if (port === undefined) return undefined
  return { nodeId: `${ip}-${port}`, source: 'ip-port', ip, port }
}
