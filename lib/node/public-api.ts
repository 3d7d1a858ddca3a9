/**
 * The server-side API an app gets as `app.wsc`: exactly these members, whatever the engine behind
 * them holds (the hub, the connections and the transport's entry points stay the plugin's).
 */
import type { NodeHealth } from '../readiness.js'
import type { NodeInfo, PresenceEntry, RouterStatus } from '../router/router.js'
import type { WscObserver } from './observer.js'
import type { SendOptions, SendResult } from './sender.js'
import type { DrainOptions, WscEvents, WscNode } from './wsc-node.js'

/** Messaging across the cluster: send, kick, presence, connection events, drain and health. */
export interface Wsc {
  /** This node's id; empty until the node started. */
  readonly nodeId: string
  /** True from the start of {@link Wsc.drain} on. */
  readonly draining: boolean
  /** Numbers the message with the user's next `seq`, stores it and delivers it to every device of the user on any node. */
  sendToUser (userId: string, data: unknown, options?: SendOptions): Promise<SendResult>
  /** Delivers a message, live only, to every member of the room on any node. */
  sendToRoom (room: string, data: unknown, options?: SendOptions): Promise<SendResult>
  /** Delivers a message, live only, to one connection on any node. */
  sendToConnection (connectionId: string, data: unknown, options?: SendOptions): Promise<SendResult>
  /** Delivers a message, live only, to every connection on every node. */
  broadcast (data: unknown, options?: SendOptions): Promise<SendResult>
  /** Closes every connection of the user, on any node, with 1008. */
  kick (userId: string, reason?: string): Promise<void>
  /** Closes one connection, on any node, with 1000. */
  disconnect (connectionId: string, reason?: string): Promise<void>
  /** Puts every current connection of the user, on any node, in the room. */
  joinRoom (userId: string, room: string): Promise<void>
  /** Takes every current connection of the user, on any node, out of the room. */
  leaveRoom (userId: string, room: string): Promise<void>
  /** Whether the user has a connection on any node. */
  isOnline (userId: string): Promise<boolean>
  /** The user's connections on every node. */
  presence (userId: string): Promise<PresenceEntry[]>
  /** Connections across the cluster. */
  onlineCount (): Promise<number>
  /** Live nodes with their connection counts. */
  nodes (): Promise<NodeInfo[]>
  /** Health of the cross-node path (Redis reachable, Pub/Sub loopback probe and its latency). */
  routerStatus (): RouterStatus
  /** This node's lifecycle and its router's and store's health: what `/ready` is computed from. */
  health (): NodeHealth
  /** Moves every client to other nodes (reconnect + 1012 over the window), then deregisters. */
  drain (options?: DrainOptions): Promise<void>
  /** Adds an observer of the node's work (metrics); the returned function removes it. */
  observe (observer: WscObserver): () => void
  /** A listener that throws or rejects is logged and changes nothing else. */
  on<K extends keyof WscEvents> (event: K, listener: (...args: WscEvents[K]) => unknown): Wsc
  once<K extends keyof WscEvents> (event: K, listener: (...args: WscEvents[K]) => unknown): Wsc
  off<K extends keyof WscEvents> (event: K, listener: (...args: WscEvents[K]) => unknown): Wsc
}

/** The `app.wsc` of a node. */
export function publicApi (node: WscNode): Wsc {
  const { sender, router } = node
  const api: Wsc = {
    get nodeId () { return node.nodeId },
    get draining () { return node.draining },
    sendToUser: (userId, data, options) => sender.sendToUser(userId, data, options),
    sendToRoom: (room, data, options) => sender.sendToRoom(room, data, options),
    sendToConnection: (connectionId, data, options) => sender.sendToConnection(connectionId, data, options),
    broadcast: (data, options) => sender.broadcast(data, options),
    kick: (userId, reason) => sender.kick(userId, reason),
    disconnect: (connectionId, reason) => sender.disconnect(connectionId, reason),
    joinRoom: (userId, room) => sender.joinRoom(userId, room),
    leaveRoom: (userId, room) => sender.leaveRoom(userId, room),
    isOnline: async (userId) => (await router.presence(userId)).length > 0,
    presence: (userId) => router.presence(userId),
    onlineCount: () => router.onlineCount(),
    nodes: () => router.nodes(),
    routerStatus: () => router.status(),
    health: () => node.health(),
    drain: (options) => node.drain(options),
    observe: (observer) => node.observers.add(observer),
    on: (event, listener) => { node.events.on(event, listener); return api },
    once: (event, listener) => { node.events.once(event, listener); return api },
    off: (event, listener) => { node.events.off(event, listener); return api }
  }
  return Object.freeze(api)
}
