/** The `node-identity` plugin: names this Fastify instance (the pod) in the cluster. */
import type { AddressInfo } from 'node:net'
import fp from 'fastify-plugin'
import { resolveSection, type ConfigSectionInput } from '../lib/config.js'
import { resolveNodeIdentity, type NodeIdentity } from '../lib/node-identity.js'

/**
 * Options of the `node-identity` plugin (the `server.*` keys): `nodeId` (the pod name; default
 * `<ip>-<port>`), `nodeIp` (default: the first non-internal IPv4), `nodePort` (default: the listen port).
 */
export type NodeIdentityOptions = ConfigSectionInput<'server'>

/**
 * This pod's identity. `current` is set at registration when the id is given, else once the server
 * listens (the id is then `<ip>-<port>`); its `port` is filled in from the listen port when not given.
 * `resolved` settles with the id as soon as it is known.
 */
export interface NodeIdentityState {
  current: NodeIdentity | undefined
  resolved: Promise<NodeIdentity>
}

declare module 'fastify' {
  interface FastifyInstance {
    /** This node's id, ip and port, as the registry and operators see them. */
    wscIdentity: NodeIdentityState
  }
}

/** The pod: names this Fastify instance in the cluster. Reads nothing but its options. */
async function registerNodeIdentity (fastify: import('fastify').FastifyInstance, options: NodeIdentityOptions): Promise<void> {
  const server = resolveSection('server', options, 'wsc-node-identity')
  const input = { nodeId: server.nodeId, nodeIp: server.nodeIp, nodePort: server.nodePort }
  const current = resolveNodeIdentity(input)
  let settle: (identity: NodeIdentity) => void = () => {}
  const state: NodeIdentityState = {
    current,
    resolved: current === undefined ? new Promise((resolve) => { settle = resolve }) : Promise.resolve(current)
  }
  if (current === undefined || current.port === undefined) {
    fastify.addHook('onListen', async function () {
      const listenPort = (fastify.server.address() as AddressInfo).port
      if (state.current === undefined) {
        state.current = resolveNodeIdentity({ ...input, listenPort })
        if (state.current !== undefined) settle(state.current)
      } else {
        state.current.port ??= listenPort
      }
    })
  }
  fastify.decorate('wscIdentity', state)
}

/** The `node-identity` plugin (`wsc-node-identity`): decorates `fastify.wscIdentity`. */
export const nodeIdentity = fp(registerNodeIdentity, { name: 'wsc-node-identity', fastify: '5.x' })
export default nodeIdentity
