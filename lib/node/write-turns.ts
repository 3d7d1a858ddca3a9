/**
 * Coalesces what one event-loop turn writes to one client socket: the first frame goes out at once,
 * and if a second one follows in the same turn (acks to a client that publishes fast, a replay) the
 * socket is corked until the turn ends, so the rest leave in one system call. A corked socket holds at
 * most {@link CORK_BYTES}: a burst of large frames (a room fan-out in a loop) leaves in writes of that
 * size instead of piling up in the process until the turn ends, where it would count against the
 * connection's send buffer and close a client that reads fine with 1013.
 */

/** The TCP socket under a `ws` WebSocket (its `_socket`, which `ws` has had in every version). */
export interface Corkable {
  cork (): void
  uncork (): void
  /** Bytes written and not yet handed to the kernel. */
  readonly writableLength: number
}

/** Bytes a corked socket holds before they leave without waiting for the end of the turn. */
export const CORK_BYTES = 8 * 1024

let turn = 0
let ending = false
const corked: Corkable[] = []

function endTurn (): void {
  ending = false
  turn++
  for (const socket of corked) socket.uncork()
  corked.length = 0
}

/** A number that changes once the current event-loop turn ended (the end is scheduled on first use). */
function currentTurn (): number {
  if (!ending) {
    ending = true
    setImmediate(endTurn)
  }
  return turn
}

/** Corks `socket` until the current turn ends. */
function corkForThisTurn (socket: Corkable): void {
  socket.cork()
  corked.push(socket)
}

/** Writes out what a socket corked by {@link corkForThisTurn} holds once that reaches {@link CORK_BYTES}; it stays corked. */
function flushIfFull (socket: Corkable): void {
  if (socket.writableLength < CORK_BYTES) return
  socket.uncork()
  socket.cork()
}

/**
 * Notes a write to `socket` about to happen; `state` is what the last call returned for this socket
 * (start with -2). The second write of a turn corks the socket: the rest of the turn's frames leave
 * with it. Returns twice the turn, plus 1 once the socket is corked in it.
 */
export function beforeWrite (state: number, socket: Corkable | null | undefined): number {
  const turn = 2 * currentTurn()
  if (state === turn) {
    if (socket !== undefined && socket !== null) corkForThisTurn(socket)
    return turn + 1
  }
  return state === turn + 1 ? state : turn
}

/** After a write: a socket corked this turn writes out what it holds once that reaches {@link CORK_BYTES}. */
export function afterWrite (state: number, socket: Corkable | null | undefined): void {
  if (state % 2 === 1 && socket !== undefined && socket !== null) flushIfFull(socket)
}
