import type { AddressInfo } from 'node:net'
import fp from 'fastify-plugin'
import { resolveNodeIdentity, type NodeIdentity } from '../lib/node-identity.js'

export interface NodeIdentityPluginOptions {
  /** Explicit node id; overrides POD_NAME, HOSTNAME, NODE_ID and ip-port. */
  nodeId?: string | undefined
  /** `server.node_ip`. */
  nodeIp?: string | undefined
  /** `server.node_port`; 0 or undefined: WSC_NODE_PORT, else the listen port. */
  nodePort?: number | undefined
}

/** This pod's identity; `resolved` waits for the listen port when the id is `<ip>-<port>` and no port is configured. */
export interface NodeIdentityState {
  current: NodeIdentity | undefined
  resolved: Promise<NodeIdentity>
}

declare module 'fastify' {
  interface FastifyInstance {
    /** This node's id (POD_NAME > HOSTNAME > NODE_ID > ip-port), ip and port. */
    wscIdentity: NodeIdentityState
  }
}

export default fp<NodeIdentityPluginOptions>(async function nodeIdentity (fastify, opts) {
  const input = { nodeId: opts.nodeId, nodeIp: opts.nodeIp, nodePort: opts.nodePort === 0 ? undefined : opts.nodePort }
  const current = resolveNodeIdentity(input)
  let settle: (identity: NodeIdentity) => void = () => {}
  const state: NodeIdentityState = {
    current,
    resolved: current === undefined ? new Promise((resolve) => { settle = resolve }) : Promise.resolve(current)
  }
  if (current === undefined) {
    fastify.addHook('onListen', async function () {
      const listenPort = (fastify.server.address() as AddressInfo).port
      state.current = resolveNodeIdentity({ ...input, listenPort })
      if (state.current !== undefined) settle(state.current)
    })
  }
  fastify.decorate('wscIdentity', state)
}, { name: 'wsc-node-identity', fastify: '5.x' })
