/**
 * `sendToUser` in one Redis round trip when the router and the message store share the command
 * connections (standalone and Sentinel): the sends of one event-loop turn are gathered per pool
 * connection and handed to one script that numbers, stores and routes them all (`SEND_TO_USERS` in
 * `inbox-scripts.ts`), each destination node getting one Pub/Sub message for the whole turn.
 */
import { asUnavailable } from '../errors.js'
import { encodeMessage, messageFromTo, type Message } from '../protocol.js'
import type { RoutedEvent } from '../router/router.js'
import type { StoredMessage } from '../store/message-store.js'
import { poolIndex } from './command-pool.js'
import type { RedisInbox } from './inbox.js'
import { runScript } from './scripts.js'

/** At most this many messages in one script call: a turn with more makes several, in order. */
const MAX_BATCH_MESSAGES = 256
/**
 * At most about this many payload bytes in one script call (one message at least): a node's batch is
 * one Pub/Sub message, which must stay far below Redis's Pub/Sub output buffer limit (32 MiB hard).
 */
const MAX_BATCH_BYTES = 1024 * 1024

interface PendingSend {
  userId: string
  message: Omit<Message, 'seq'>
  idempotent: boolean
  publishedAt: number
  resolve: (stored: StoredMessage) => void
  reject: (err: Error) => void
}

export interface RedisUserSendsOptions {
  /** The store's inbox: its keys, bounds and command connections, which the router shares. */
  inbox: RedisInbox
  /** This node's id (known once the router started). */
  nodeId: () => string
  /** Whether a connection of the user is on this node. */
  hostsUser: (userId: string) => boolean
  /** Hands an event to this node's connections. */
  deliverLocally: (event: RoutedEvent) => void
}

/** The sends of one turn, gathered per pool connection, each connection's in one script call (or a few). */
export class RedisUserSends {
  readonly #options: RedisUserSendsOptions
  /**
   * Sends waiting for the end of this turn, by pool connection index: a new array each turn, not a `Map`.
   * A long-lived `Map` cleared every turn links each cleared table to the next one, the first of them is
   * old, and through that chain every turn's sends (payloads, ids, frames) survived young collections
   * and filled the old generation: a scavenge copied about 2 KB per message and took 6–7 ms
   * (docs/performance.md, step 8).
   */
  #waiting: Array<PendingSend[] | undefined> = []
  #scheduled = false

  constructor (options: RedisUserSendsOptions) {
    this.#options = options
  }

  /** Numbers, stores and routes a message to every device of the user; resolves with it as stored. */
  send (userId: string, message: Omit<Message, 'seq'>, options: { idempotent: boolean, publishedAt: number }): Promise<StoredMessage> {
    return new Promise((resolve, reject) => {
      const index = poolIndex(userId, this.#options.inbox.pool.size)
      const send: PendingSend = { userId, message, idempotent: options.idempotent, publishedAt: options.publishedAt, resolve, reject }
      const queue = this.#waiting[index]
      if (queue === undefined) this.#waiting[index] = [send]
      else queue.push(send)
      if (!this.#scheduled) {
        this.#scheduled = true
        setImmediate(() => this.#flush())
      }
    })
  }

  #flush (): void {
    this.#scheduled = false
    const waiting = this.#waiting
    this.#waiting = []
    for (let index = 0; index < waiting.length; index++) {
      const queue = waiting[index]
      if (queue === undefined) continue
      let batch: PendingSend[] = []
      let bytes = 0
      for (const send of queue) {
        if (batch.length > 0 && (batch.length === MAX_BATCH_MESSAGES || bytes + send.message.dataJson.length > MAX_BATCH_BYTES)) {
          this.#run(index, batch)
          batch = []
          bytes = 0
        }
        batch.push(send)
        bytes += send.message.dataJson.length
      }
      this.#run(index, batch)
    }
  }

  /** One script call for a batch, on its connection (calls on one connection run in the order issued). */
  #run (index: number, batch: PendingSend[]): void {
    const { inbox } = this.#options
    const keys = inbox.keys
    const keyList: string[] = []
    const args: Array<string | number> = [...inbox.bounds, this.#options.nodeId(), keys.nodeChannel(''), keys.batchChannel(''), JSON.stringify(this.#options.nodeId())]
    for (const { userId, message, idempotent, publishedAt } of batch) {
      keyList.push(...inbox.streamKeys(userId), keys.presence(userId))
      const target = JSON.stringify(message.to)
      // The script quotes the id as it is: the sender's ids are UUIDs or of `A-Z a-z 0-9 . _ : -`.
      args.push(message.id, message.from ?? '', message.ts, message.dataJson, idempotent ? '1' : '', messageFromTo(message.from, target), target, publishedAt)
    }
    inbox.pool.onConnection(index, (client) => runScript(client, 'wscSendToUsers', keyList, args)).then(
      (reply) => this.#settle(batch, reply as string[]),
      (err: unknown) => {
        const failure = asUnavailable('Redis', err)
        for (const send of batch) send.reject(failure)
      })
  }

  /** Resolves each send with its seq, after handing the new ones for users on this node to their connections. */
  #settle (batch: PendingSend[], reply: string[]): void {
    for (let i = 0; i < batch.length; i++) {
      const send = batch[i] as PendingSend
      const status = reply[3 * i + 2]
      if (status !== '' && status !== 'd') {
        send.reject(asUnavailable('Redis', new Error(status ?? 'no reply for this message')))
        continue
      }
      const seq = Number(reply[3 * i])
      const prev = Number(reply[3 * i + 1])
      const stored: StoredMessage = { ...send.message, seq }
      if (prev !== seq - 1) stored.prevSeq = prev
      if (status === '' && this.#options.hostsUser(send.userId)) {
        this.#options.deliverLocally({ kind: 'deliver', target: send.message.to, frame: encodeMessage(stored), seq, prevSeq: stored.prevSeq, publishedAt: send.publishedAt })
      }
      send.resolve(stored)
    }
  }
}
