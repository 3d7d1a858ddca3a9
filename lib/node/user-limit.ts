/** The per-user connection limit across the cluster: the oldest connections beyond it are closed (1008). */
import { CloseCode } from '../protocol.js'
import { parseConnectionId, type PresenceEntry, type Router } from '../router/router.js'

/** Closes the user's oldest connections, on any node, beyond `max` (0: no limit). */
export async function closeOldestBeyond (router: Router, userId: string, max: number): Promise<void> {
  if (max === 0) return
  const entries = await router.presence(userId)
  if (entries.length <= max) return
  const age = (entry: PresenceEntry): number => parseConnectionId(entry.connectionId)?.startedAt ?? 0
  const oldest = entries.sort((a, b) => age(a) - age(b) || a.connectionId.localeCompare(b.connectionId))
  await Promise.all(oldest.slice(0, entries.length - max).map((entry) =>
    router.toConnection(entry.connectionId, {
      kind: 'disconnect',
      connectionId: entry.connectionId,
      code: CloseCode.POLICY,
      reason: `more than ${max} connections for this user`
    })))
}
