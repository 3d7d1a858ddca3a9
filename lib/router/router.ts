/**
 * The `Router` seam between a node and the others (registry, presence, fan-out), the events it
 * carries, and connection ids.
 */
import type { Message, Target } from '../protocol.js'
import type { MessageStore, StoredMessage } from '../store/message-store.js'

/** One live connection of a user, as presence reports it. */
export interface PresenceEntry {
  connectionId: string
  nodeId: string
}

/** A node as the registry reports it. */
export interface NodeInfo {
  id: string
  ip: string
  port: number | null
  startedAt: number
  heartbeatAt: number
  connections: number
  version: string
  /** Random per process: two processes under one id tell each other apart (absent from older versions). */
  instance?: string
}

/**
 * What crosses from the node that sends to the nodes that host the target. `frame` is the encoded
 * `message` frame: serialized once by the sender, never re-encoded on the way.
 */
export type RoutedEvent =
  | {
    kind: 'deliver'
    target: Target
    frame: string
    seq?: number
    /** The seq before `seq` in the user's stream, when it is not `seq - 1` (the first of a new stream: 0). */
    prevSeq?: number
    /** Epoch ms when the sending node handed it to the router (publish-to-write latency); routers carry it across nodes. */
    publishedAt?: number
  }
  | { kind: 'kick', userId: string, code: number, reason: string }
  | { kind: 'disconnect', connectionId: string, code: number, reason: string }
  | { kind: 'join', userId: string, room: string }
  | { kind: 'leave', userId: string, room: string }

/** The node's own facts, handed to the router at start. */
export interface LocalNode {
  nodeId: string
  ip: string
  /** The HTTP port, read at every registry heartbeat (known once the server listens); null while unknown. */
  port: () => number | null
  version: string
  /** Current local connection count, read at every registry heartbeat. */
  connections: () => number
  /**
   * Routing was interrupted and works again (Pub/Sub re-subscribed, presence republished): events sent
   * meanwhile may not have reached this node, so its connections catch up from the store.
   */
  afterGap: () => void
}

/** Health of the cross-node path, for readiness and metrics. */
export interface RouterStatus {
  /** Whether sends to other nodes can be accepted now. */
  up: boolean
  /** Round trip of the last Pub/Sub loopback probe in ms; null when there is none. */
  probeLatencyMs: number | null
  /** When the last probe came back (epoch ms); null when none did. */
  probeAt: number | null
  /** Events this node received from other nodes since it started (probes excluded); 0 when nothing crosses nodes. */
  received: number
  detail: string
}

/**
 * Cross-node fan-out, presence and the node registry. A `send*` promise rejects with
 * `WSC_ERR_UNAVAILABLE` when the event could not be handed to the nodes that host the target.
 */
export interface Router {
  /** Connects, registers the node and starts delivering events for it to `onEvent`. */
  start (node: LocalNode, onEvent: (event: RoutedEvent) => void): Promise<void>
  /** Deregisters the node, drops this node's presence and closes every connection it opened. */
  close (): Promise<void>
  /**
   * The node's facts changed (its port, once the server listens): rewrite its registry entry now rather
   * than at the next heartbeat. A router that reads them only when asked need not have it.
   */
  refreshNode? (): Promise<void>
  status (): RouterStatus

  addPresence (userId: string, connectionId: string): Promise<void>
  removePresence (userId: string, connectionId: string): Promise<void>
  presence (userId: string): Promise<PresenceEntry[]>
  /** Connections across the cluster. */
  onlineCount (): Promise<number>
  nodes (): Promise<NodeInfo[]>

  /** Delivers to every node that hosts a connection of `userId` (the sender's own included). */
  toUser (userId: string, event: RoutedEvent): Promise<void>
  /** Delivers to every node that has a local member of `room`. */
  toRoom (room: string, event: RoutedEvent): Promise<void>
  /** Delivers to the node that hosts `connectionId`. */
  toConnection (connectionId: string, event: RoutedEvent): Promise<void>
  /** Delivers to every node. */
  toAll (event: RoutedEvent): Promise<void>

  /**
   * When this router and `store` share one backend: a function that numbers, stores and routes a
   * user message in one step (and delivers it to this node's connections), used by `sendToUser` in
   * place of `store.append` then {@link toUser}. Undefined when they do not.
   */
  storeAndRoute? (store: MessageStore): StoreAndRoute | undefined

  /** This node now has a local member of `room`: receive its traffic. */
  subscribeRoom (room: string): Promise<void>
  /** This node has no local member of `room` any more: stop receiving its traffic. */
  unsubscribeRoom (room: string): Promise<void>
}

/**
 * Numbers, stores and routes one user message: resolves with it as stored (a duplicate of an
 * idempotent id comes back with its first seq, and is not routed again).
 */
export type StoreAndRoute = (userId: string, message: Omit<Message, 'seq'>, options: { idempotent: boolean, publishedAt: number }) => Promise<StoredMessage>

const CONNECTION_ID_SEPARATOR = '~'

/** A connection id names its node and its start time: `<nodeId>~<ms base36>-<random>`. */
export function makeConnectionId (nodeId: string, now: number, random: string): string {
  // Made flat (one string, not a tree of the parts a template joins): each open connection keeps its id.
  return Buffer.from(`${nodeId}${CONNECTION_ID_SEPARATOR}${now.toString(36)}-${random}`).toString()
}

/** The node and start time encoded in a connection id, or undefined for an id this code did not make. */
export function parseConnectionId (connectionId: string): { nodeId: string, startedAt: number } | undefined {
  const at = connectionId.lastIndexOf(CONNECTION_ID_SEPARATOR)
  if (at <= 0) return undefined
  const rest = connectionId.slice(at + 1)
  const dash = rest.indexOf('-')
  const startedAt = parseInt(rest.slice(0, dash), 36)
  if (dash <= 0 || !Number.isFinite(startedAt)) return undefined
  return { nodeId: connectionId.slice(0, at), startedAt }
}
