import WebSocket from 'ws'

export type Frame = Record<string, unknown> & { type: string }

/** Rejects after `ms` naming `what`, unless `promise` settles first. */
export async function within<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * A protocol client that connects from a chosen loopback address, so that nginx's ip_hash (which
 * hashes the first three octets) spreads clients over the upstreams as it spreads real clients.
 */
export class LoopbackClient {
  readonly socket: WebSocket
  readonly frames: Frame[] = []
  readonly closed: Promise<{ code: number }>
  #waiters: Array<() => void> = []

  constructor (url: string, localAddress: string) {
    this.socket = new WebSocket(url, { localAddress })
    this.socket.on('message', (data) => {
      this.frames.push(JSON.parse(data.toString()) as Frame)
      this.#wake()
    })
    this.closed = new Promise((resolve) => {
      this.socket.on('close', (code) => {
        resolve({ code })
        this.#wake()
      })
    })
    this.socket.on('error', () => {})
  }

  /** Connects and resolves with the client once its `welcome` frame arrived. */
  static async connect (url: string, localAddress: string): Promise<{ client: LoopbackClient, welcome: Frame }> {
    const client = new LoopbackClient(url, localAddress)
    const welcome = await client.next('welcome')
    return { client, welcome }
  }

  #wake (): void {
    const waiters = this.#waiters
    this.#waiters = []
    for (const wake of waiters) wake()
  }

  send (frame: unknown): void {
    this.socket.send(JSON.stringify(frame))
  }

  /** The next unread frame of `type`; frames of other types stay unread. */
  async next (type: string, ms = 5000): Promise<Frame> {
    return within((async () => {
      for (;;) {
        const i = this.frames.findIndex((frame) => frame.type === type)
        if (i >= 0) return this.frames.splice(i, 1)[0] as Frame
        if (this.socket.readyState >= WebSocket.CLOSING) throw new Error(`socket closed while waiting for ${type}`)
        await new Promise<void>((resolve) => this.#waiters.push(resolve))
      }
    })(), ms, `a ${type} frame`)
  }

  async close (): Promise<void> {
    if (this.socket.readyState === WebSocket.OPEN || this.socket.readyState === WebSocket.CONNECTING) this.socket.close()
    await within(this.closed, 5000, 'close')
  }
}

/** Loopback source addresses in distinct /24s (127.0.N.1), as ip_hash tells clients apart. */
export function sourceAddress (n: number): string {
  return `127.0.${n}.1`
}

/**
 * Connects users through `wsUrl` from successive source addresses until every node named in
 * `nodeIds` hosts at least one of them (at most `maxTries` connections); the others are closed.
 */
export async function spreadOverNodes (wsUrl: string, nodeIds: string[], maxTries = 64): Promise<Map<string, { client: LoopbackClient, user: string, address: string }>> {
  const placed = new Map<string, { client: LoopbackClient, user: string, address: string }>()
  for (let n = 0; n < maxTries && placed.size < nodeIds.length; n++) {
    const user = `user-${n}`
    const address = sourceAddress(n)
    const { client, welcome } = await LoopbackClient.connect(`${wsUrl}?token=${user}`, address)
    const nodeId = String(welcome.nodeId)
    if (nodeIds.includes(nodeId) && !placed.has(nodeId)) placed.set(nodeId, { client, user, address })
    else await client.close()
  }
  return placed
}
