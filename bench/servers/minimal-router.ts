// The least a ws + Redis router does to reach a user on another node, at most once: each node keeps
// user → node in memory, learned from announcements on one Redis channel (a node announces a user when
// the user connects and when another node says hello); a message is one PUBLISH to the holding node's
// channel, written there to the user's sockets. Nothing is numbered, stored, retried or confirmed.
// It speaks protocol v1's subset the load generators use: welcome, publish → ack, message.
import { createServer } from 'node:http'
import { Redis } from 'ioredis'
import { WebSocketServer, type WebSocket } from 'ws'
import { sendToRandomUsers, serveCommands } from '../harness.js'
import { fulfilsWithin } from '../../lib/fulfils-within.js'

const nodeId = process.env.BENCH_NODE_ID ?? 'minimal-0'
const [host, port] = (process.env.REDIS_ADDR ?? '127.0.0.1:6379').split(':')
const pub = new Redis({ host, port: Number(port) })
const sub = pub.duplicate()
const PRESENCE = 'minimal:presence'
const nodeChannel = (id: string): string => `minimal:node:${id}`

/** Where every user is, as announced; the users connected here and their sockets. */
const userNode = new Map<string, string>()
const localUsers = new Map<string, Set<WebSocket>>()
let knownWaiter: { count: number, resolve: () => void } | undefined

function deliverHere (user: string, frame: string): void {
  for (const socket of localUsers.get(user) ?? []) socket.send(frame)
}

/** One PUBLISH to the node that holds `user`; resolves false when no node announced the user. */
async function route (user: string, frame: string): Promise<boolean> {
  const node = userNode.get(user)
  if (node === undefined) return false
  if (node === nodeId) deliverHere(user, frame)
  else await pub.publish(nodeChannel(node), `${user}\n${frame}`)
  return true
}

/** Tells every node (this one too) where a user is; a lost announcement shows as `knowsUsers` failing. */
function announce (what: string): void {
  pub.publish(PRESENCE, what).catch(() => {})
}

function messageFrame (from: string | null, user: string, dataJson: string): string {
  return `{"type":"message","from":${JSON.stringify(from)},"to":${JSON.stringify({ user })},"data":${dataJson}}`
}

sub.on('message', (channel: string, payload: string) => {
  if (channel !== PRESENCE) {
    const cut = payload.indexOf('\n')
    deliverHere(payload.slice(0, cut), payload.slice(cut + 1))
    return
  }
  // `+ user node`, `- user node`, or `hello node` (a node that starts late learns who is where).
  const [op, user = '', node = ''] = payload.split(' ')
  if (op === '+') userNode.set(user, node)
  else if (op === '-' && userNode.get(user) === node) userNode.delete(user)
  else if (op === 'hello' && user !== nodeId) for (const known of localUsers.keys()) announce(`+ ${known} ${nodeId}`)
  if (knownWaiter !== undefined && userNode.size >= knownWaiter.count) knownWaiter.resolve()
})
await sub.subscribe(PRESENCE, nodeChannel(nodeId))
announce(`hello ${nodeId}`)

const server = createServer((_req, res) => res.writeHead(404).end())
const wss = new WebSocketServer({ server, maxPayload: 64 * 1024, perMessageDeflate: false })

wss.on('connection', (socket, request) => {
  const user = new URL(request.url ?? '/', 'http://x').searchParams.get('token')
  if (user === null) {
    socket.close(1008)
    return
  }
  let sockets = localUsers.get(user)
  if (sockets === undefined) localUsers.set(user, sockets = new Set())
  sockets.add(socket)
  announce(`+ ${user} ${nodeId}`)
  socket.send(JSON.stringify({ type: 'welcome', userId: user, nodeId }))
  socket.on('message', (raw) => {
    const frame = JSON.parse(raw.toString()) as { type: string, id?: string, to?: { user?: string }, data?: unknown }
    const to = frame.to?.user
    if (frame.type !== 'publish' || to === undefined) return
    route(to, messageFrame(user, to, JSON.stringify(frame.data))).then((routed) => {
      socket.send(routed ? JSON.stringify({ type: 'ack', id: frame.id }) : JSON.stringify({ type: 'error', id: frame.id, code: 'NOT_FOUND', message: `user ${to} is not connected` }))
    }, (err: unknown) => {
      socket.send(JSON.stringify({ type: 'error', id: frame.id, code: 'UNAVAILABLE', message: String(err) }))
    })
  })
  socket.on('close', () => {
    sockets.delete(socket)
    if (sockets.size > 0) return
    localUsers.delete(user)
    announce(`- ${user} ${nodeId}`)
  })
})

serveCommands({
  listen: async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    return (server.address() as { port: number }).port
  },
  /** Resolves once `count` users have been announced to this node (bounded by `timeoutMs`). */
  knowsUsers: async ({ count, timeoutMs }) => {
    const wanted = Number(count)
    if (userNode.size < wanted) {
      await fulfilsWithin(new Promise<void>((resolve) => { knownWaiter = { count: wanted, resolve } }), Number(timeoutMs ?? 10_000))
      knownWaiter = undefined
    }
    if (userNode.size < wanted) throw new Error(`${nodeId} knows ${userNode.size} of ${wanted} users`)
    return userNode.size
  },
  sendToUsers: async (args) => sendToRandomUsers(args, async (user, data) => {
    if (!await route(user, messageFrame(null, user, JSON.stringify(data)))) throw new Error(`user ${user} is not connected`)
  })
})
