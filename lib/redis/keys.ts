/**
 * Every Redis key and channel name fastify-wsc uses; docs/redis.md describes each one (the contract other nodes and tools rely on).
 * All start with the configurable prefix (default `wsc:`). The `{…}` in a user key is a Redis Cluster
 * hash tag: every key of one user lands in one slot.
 */
export class RedisKeys {
  readonly prefix: string

  constructor (prefix: string) {
    this.prefix = prefix
  }

  /** STRING (JSON {@link NodeInfo}) with TTL 3× the heartbeat: the node registry entry. */
  node (nodeId: string): string {
    return `${this.prefix}nodes:${nodeId}`
  }

  /** ZSET nodeId → last heartbeat (epoch ms): discovery and reaping without KEYS. */
  get nodeIndex (): string {
    return `${this.prefix}node-index`
  }

  /** HASH connectionId → nodeId: where a user is connected. */
  presence (userId: string): string {
    return `${this.prefix}presence:{${userId}}`
  }

  /**
   * SET of the user ids a node hosts (beyond the contract): lets a survivor find a dead node's presence
   * entries without scanning every user. Deleted when the node deregisters or is reaped.
   */
  nodeUsers (nodeId: string): string {
    return `${this.prefix}node-users:${nodeId}`
  }

  /** STRING: the latest seq given to a message of the user (durable delivery). */
  seq (userId: string): string {
    return `${this.prefix}seq:{${userId}}`
  }

  /** STREAM: the user's newest messages, entry id `<seq>-0`, bounded by `store.inbox_size` and `store.max_inbox_bytes`. */
  inbox (userId: string): string {
    return `${this.prefix}inbox:{${userId}}`
  }

  /** STRING: the payload bytes the user's inbox stream holds, for its byte bound. */
  inboxBytes (userId: string): string {
    return `${this.prefix}inbox-bytes:{${userId}}`
  }

  /** ZSET message id → seq of the user's messages sent with an id of the caller's: a retry finds the first. */
  ids (userId: string): string {
    return `${this.prefix}ids:{${userId}}`
  }

  /** STRING: names this Redis dataset's history (`epoch` of welcome frames); a Redis that lost its data makes a new one. */
  get epoch (): string {
    return `${this.prefix}epoch`
  }

  /** STRING: the highest seq the user acknowledged. */
  acked (userId: string): string {
    return `${this.prefix}acked:{${userId}}`
  }

  /** Channel: events for connections on one node (deliver, kick, disconnect, join, leave) and its probe. */
  nodeChannel (nodeId: string): string {
    return `${this.prefix}node:${nodeId}`
  }

  /**
   * Channel (beyond the contract): batches of user messages for connections on one node, from the
   * script that stores and routes them. A node that subscribes it reads batches; a sender whose batch
   * nobody received sends its messages one by one on the node channel.
   */
  batchChannel (nodeId: string): string {
    return `${this.prefix}node-batch:${nodeId}`
  }

  /** Channel: a room's traffic; a node subscribes only while it has a local member. */
  roomChannel (room: string): string {
    return `${this.prefix}room:${room}`
  }

  /** Channel: messages for every connection. */
  get broadcastChannel (): string {
    return `${this.prefix}broadcast`
  }
}
