/**
 * What this node does with an event routed to it (from its own sends or from other nodes): hands
 * messages to its local connections, closes the ones a kick or disconnect names, moves a user's
 * connections in or out of a room.
 */
import type { Logger } from '../logger.js'
import { encodeJoined, encodeLeft } from '../protocol.js'
import type { RoutedEvent, Router } from '../router/router.js'
import type { ClientConnection } from './client-connection.js'
import type { LocalHub } from './hub.js'
import { targetKind, type WscObserver } from './observer.js'

export interface RoutedEventContext {
  hub: LocalHub
  router: Router
  observer: WscObserver
  log: Logger
}

export function applyRoutedEvent ({ hub, router, observer, log }: RoutedEventContext, event: RoutedEvent): void {
  switch (event.kind) {
    case 'deliver':
      observer.messagesOut(targetKind(event.target), hub.deliver(event.target, event.frame, event.seq, event.publishedAt, event.prevSeq))
      return
    case 'kick':
      for (const connection of hub.user(event.userId)) connection.close(event.code, event.reason)
      return
    case 'disconnect':
      hub.get(event.connectionId)?.close(event.code, event.reason)
      return
    case 'join': {
      const joined: ClientConnection[] = []
      let first = false
      for (const connection of hub.user(event.userId)) {
        if (connection.rooms?.has(event.room) === true) continue
        if (hub.join(connection, event.room)) first = true
        joined.push(connection)
      }
      // `joined` goes out once the room channel is subscribed, so traffic sent after it arrives.
      const notify = (): void => { for (const connection of joined) connection.write(Buffer.from(encodeJoined(event.room))) }
      if (first) router.subscribeRoom(event.room).catch((err: unknown) => log.warn({ err, room: event.room }, 'subscribe failed')).finally(notify)
      else notify()
      return
    }
    case 'leave':
      for (const connection of hub.user(event.userId)) {
        if (connection.rooms?.has(event.room) !== true) continue
        if (hub.leave(connection, event.room)) router.unsubscribeRoom(event.room).catch((err: unknown) => log.warn({ err, room: event.room }, 'unsubscribe failed'))
        connection.write(Buffer.from(encodeLeft(event.room)))
      }
  }
}
