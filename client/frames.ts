/** What the server sends in a `message` frame. */
export interface WscMessage {
  id: string
  /** Present on user-addressed messages only: the user's sequence number. */
  seq?: number
  /** The sending user, or null for a message the server sent. */
  from: string | null
  to: { user: string } | { room: string } | { connection: string } | { broadcast: true }
  data: unknown
  /** When it was sent, epoch ms. */
  ts: number
}

/** The server's first frame on a connection. */
export interface WscWelcome {
  nodeId: string
  connectionId: string
  userId: string
  heartbeatMs: number
  /** The user's latest `seq` when the connection opened. */
  seq: number
  /** Names the user's stream; it changes when the server lost that user's history (absent on older servers). */
  epoch?: string
  /** False when the replay could not start right after the client's `since`. */
  recovered?: boolean
  /** The oldest `seq` the server still holds for the user. */
  oldestSeq?: number
}

/** Why the client could not resume right after its `lastSeq`: messages in between may be lost. */
export interface WscReset {
  /**
   * `epoch`: the user's stream changed (the server lost its history); `not-recovered`: the welcome said
   * `recovered: false` (`since` older than what is retained); `seq-behind`: the server's latest `seq` is
   * below the client's, which only a server that lost its history (and says no epoch) can answer.
   */
  reason: 'epoch' | 'not-recovered' | 'seq-behind'
  /** The `since` the client resumed from. */
  previousSeq: number
  previousEpoch?: string
  epoch?: string
  oldestSeq?: number
  /** The user's latest `seq` now. */
  seq: number
}

/** The `welcome` frame's fields, or undefined when it is malformed. */
export function parseWelcome (frame: Record<string, unknown>): WscWelcome | undefined {
  const { nodeId, connectionId, userId, heartbeatMs, seq, epoch, recovered, oldestSeq } = frame
  if (typeof nodeId !== 'string' || typeof connectionId !== 'string' || typeof userId !== 'string' || typeof seq !== 'number') return undefined
  const welcome: WscWelcome = { nodeId, connectionId, userId, seq, heartbeatMs: typeof heartbeatMs === 'number' && heartbeatMs > 0 ? heartbeatMs : 30_000 }
  if (typeof epoch === 'string') welcome.epoch = epoch
  if (typeof recovered === 'boolean') welcome.recovered = recovered
  if (typeof oldestSeq === 'number') welcome.oldestSeq = oldestSeq
  return welcome
}

/** Compares a welcome with where the client resumed from; undefined when nothing was lost. */
export function resumeReset (welcome: WscWelcome, since: number | undefined, epoch: string | undefined): WscReset | undefined {
  // Resuming from 0 asks for everything held: there was nothing to lose.
  if (since === undefined || since === 0) return undefined
  let reason: WscReset['reason'] | undefined
  if (welcome.epoch !== undefined && epoch !== undefined && welcome.epoch !== epoch) reason = 'epoch'
  else if (welcome.recovered === false) reason = 'not-recovered'
  else if (welcome.seq < since) reason = 'seq-behind'
  if (reason === undefined) return undefined
  const reset: WscReset = { reason, previousSeq: since, seq: welcome.seq }
  if (epoch !== undefined) reset.previousEpoch = epoch
  if (welcome.epoch !== undefined) reset.epoch = welcome.epoch
  if (welcome.oldestSeq !== undefined) reset.oldestSeq = welcome.oldestSeq
  return reset
}
