import { networkInterfaces } from 'node:os'

/** Where a node's id came from, in the order they are tried. */
export type NodeIdSource = 'option' | 'POD_NAME' | 'HOSTNAME' | 'NODE_ID' | 'ip-port'

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
  /** An explicit id (plugin option `nodeId`); overrides every other source. */
  nodeId?: string | undefined
  /** `server.node_ip` from the configuration (already merged with `WSC_NODE_IP`). */
  nodeIp?: string | undefined
  /** `server.node_port` from the configuration (already merged with `WSC_NODE_PORT`). */
  nodePort?: number | undefined
  /** The port the HTTP server listens on, once known. */
  listenPort?: number | undefined
  env?: NodeJS.ProcessEnv
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
 * Resolves the node id: the explicit option, else the first non-empty of `POD_NAME`, `HOSTNAME`,
 * `NODE_ID`, else `<ip>-<port>` (ip from `WSC_NODE_IP`, `POD_IP` or the first non-internal IPv4;
 * port from `WSC_NODE_PORT` or the listen port). Returns `undefined` only when the id needs a port
 * that is not known yet (call again once the server listens).
 */
export function resolveNodeIdentity (input: NodeIdentityInput = {}): NodeIdentity | undefined {
  const env = input.env ?? process.env
  const ip = nonEmpty(input.nodeIp) ?? nonEmpty(env.WSC_NODE_IP) ?? nonEmpty(env.POD_IP) ??
    firstExternalIPv4(input.interfaces)
  const envPort = nonEmpty(env.WSC_NODE_PORT)
  const resolvedPort = input.nodePort ?? (envPort === undefined ? undefined : Number(envPort)) ?? input.listenPort

  const named: Array<[NodeIdSource, string | undefined]> = [
    ['option', nonEmpty(input.nodeId)],
    ['POD_NAME', nonEmpty(env.POD_NAME)],
    ['HOSTNAME', nonEmpty(env.HOSTNAME)],
    ['NODE_ID', nonEmpty(env.NODE_ID)]
  ]
  for (const [source, nodeId] of named) {
    if (nodeId !== undefined) return { nodeId, source, ip, port: resolvedPort }
  }
  if (resolvedPort === undefined) return undefined
  return { nodeId: `${ip}-${resolvedPort}`, source: 'ip-port', ip, port: resolvedPort }
}
