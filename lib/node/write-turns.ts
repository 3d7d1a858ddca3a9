/**
 * Coalesces what one event-loop turn writes to one client socket: the first frame goes out at once,
 * and if a second one follows in the same turn (acks to a client that publishes fast, a replay) the
 * socket is corked until the turn ends, so the rest leave in one system call.
 */

/** The TCP socket under a `ws` WebSocket (its `_socket`, which `ws` has had in every version). */
export interface Corkable {
  cork (): void
  uncork (): void
}

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
export function currentTurn (): number {
  if (!ending) {
    ending = true
    setImmediate(endTurn)
  }
  return turn
}

/** Corks `socket` until the current turn ends. */
export function corkForThisTurn (socket: Corkable): void {
  socket.cork()
  corked.push(socket)
}
