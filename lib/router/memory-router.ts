/** The in-memory router of a node that runs alone: presence and routing without Redis. */
import { Multimap } from '../multimap.js'
import type { LocalNode, NodeInfo, PresenceEntry, RoutedEvent, Router, RouterStatus } from './router.js'

/** The embedded default: one node, every event delivered in-process. */
export class MemoryRouter implements Router {
  #node: LocalNode | undefined
  #onEvent: ((event: RoutedEvent) => void) | undefined
  #startedAt = 0
  readonly #presence = new Multimap<string, string>()
  #connections = 0

  async start (node: LocalNode, onEvent: (event: RoutedEvent) => void): Promise<void> {
    this.#node = node
    this.#onEvent = onEvent
    this.#startedAt = Date.now()
  }

  async close (): Promise<void> {
    this.#onEvent = undefined
    this.#presence.clear()
    this.#connections = 0
  }

  status (): RouterStatus {
    return { up: this.#onEvent !== undefined, probeLatencyMs: null, probeAt: null, received: 0, detail: 'in-memory (single node)' }
  }

  async addPresence (userId: string, connectionId: string): Promise<void> {
    if (this.#presence.add(userId, connectionId)) this.#connections++
  }

  async removePresence (userId: string, connectionId: string): Promise<void> {
    if (this.#presence.delete(userId, connectionId)) this.#connections--
  }

  async presence (userId: string): Promise<PresenceEntry[]> {
    const nodeId = this.#node?.nodeId ?? ''
    return [...this.#presence.values(userId)].map((connectionId) => ({ connectionId, nodeId }))
  }

  async onlineCount (): Promise<number> {
    return this.#connections
  }

  async nodes (): Promise<NodeInfo[]> {
    const node = this.#node
    if (node === undefined) return []
    return [{ id: node.nodeId, ip: node.ip, port: node.port(), startedAt: this.#startedAt, heartbeatAt: Date.now(), connections: node.connections(), version: node.version }]
  }

  async toUser (_userId: string, event: RoutedEvent): Promise<void> {
    this.#emit(event)
  }

  async toRoom (_room: string, event: RoutedEvent): Promise<void> {
    this.#emit(event)
  }

  async toConnection (_connectionId: string, event: RoutedEvent): Promise<void> {
    this.#emit(event)
  }

  async toAll (event: RoutedEvent): Promise<void> {
    this.#emit(event)
  }

  async subscribeRoom (): Promise<void> {}

  async unsubscribeRoom (): Promise<void> {}

  #emit (event: RoutedEvent): void {
    this.#onEvent?.(event)
  }
}
