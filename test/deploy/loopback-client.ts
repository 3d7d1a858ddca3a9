import { TestClient } from '../helper.js'

/** Loopback source addresses in distinct /24s (127.0.N.1), as a balancer hashing the address (ip_hash) tells clients apart. */
export function sourceAddress (n: number): string {
  return `127.0.${n}.1`
}

/**
 * Connects users through `wsUrl` from successive source addresses until every node named in
 * `nodeIds` hosts at least one of them (at most `maxTries` connections); the others are closed.
 */
export async function spreadOverNodes (wsUrl: string, nodeIds: string[], maxTries = 64): Promise<Map<string, { client: TestClient, user: string, address: string }>> {
  const placed = new Map<string, { client: TestClient, user: string, address: string }>()
  for (let n = 0; n < maxTries && placed.size < nodeIds.length; n++) {
    const user = `user-${n}`
    const address = sourceAddress(n)
    const client = await TestClient.connect(`${wsUrl}?token=${user}`, { localAddress: address })
    const nodeId = String(client.welcome?.nodeId)
    if (nodeIds.includes(nodeId) && !placed.has(nodeId)) placed.set(nodeId, { client, user, address })
    else await client.close()
  }
  return placed
}
