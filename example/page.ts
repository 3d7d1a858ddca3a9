/**
 * The demo page at `/`: chat in rooms (switched without reconnecting), direct messages and
 * notifications (the stored ones again after a reload), who is in the room and on which node, and the
 * connection state with a reconnect countdown. Built on the browser client at `/client.js`; `/api/nodes`
 * and `/api/presence/:user` are used when the API is open (development), and skipped when it is not.
 *
 * Who is in a room is announced by the pages themselves: each page publishes `{"presence":"join"|"here"|
 * "leave","node":…}` to its room when it (re)joins, answers a `join` with `here`, repeats `here` every
 * 20 s and forgets a member not heard from for 50 s. The server keeps no room roster, so this is the
 * page's own convention, not part of the protocol.
 */
export const demoPage = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>fastify-wsc demo</title>
<link rel="icon" href="data:,">
<style>
  *, *::before, *::after { box-sizing: border-box; }
  html { -webkit-text-size-adjust: 100%; }
  body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #111827; background: #fff; }
  .sr-only { position: absolute; width: 1px; height: 1px; padding: 0; margin: -1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; border: 0; }
  button, input { font: inherit; }
  input { min-width: 0; padding: .4rem .5rem; border: 1px solid #6b7280; border-radius: 4px; color: #111827; background: #fff; }
  button { min-height: 2.4rem; padding: .35rem .8rem; border: 1px solid #1e40af; border-radius: 4px; background: #1d4ed8; color: #fff; cursor: pointer; }
  button:disabled { background: #e5e7eb; color: #374151; border-color: #9ca3af; cursor: default; }
  :focus-visible { outline: 3px solid #f59e0b; outline-offset: 2px; }
  header { display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: center; padding: .6rem 1rem; background: #1f2937; color: #f9fafb; }
  header h1 { font-size: 1.05rem; margin: 0; }
  header form { display: flex; flex-wrap: wrap; gap: .4rem; align-items: center; }
  header label { color: #f9fafb; }
  header input { width: 9rem; }
  #status { display: flex; align-items: center; gap: .45rem; margin-left: auto; font-size: 14px; min-width: 0; overflow-wrap: anywhere; }
  #status::before { content: ""; flex: none; width: .7rem; height: .7rem; border-radius: 50%; background: #9ca3af; }
  #status[data-state="open"]::before { background: #34d399; }
  #status[data-state="connecting"]::before, #status[data-state="reconnecting"]::before { background: #fbbf24; }
  #status[data-state="closed"]::before { background: #f87171; }
  #notice { margin: .75rem 1rem 0; padding: .5rem .75rem; border-radius: 4px; background: #fef3c7; color: #78350f; border: 1px solid #d97706; }
  #notice[hidden] { display: none; }
  main { display: grid; grid-template-columns: minmax(0, 1fr); gap: 1rem; padding: 1rem; }
  section { display: flex; flex-direction: column; min-width: 0; min-height: 18rem; border: 1px solid #d1d5db; border-radius: 6px; }
  @media (min-width: 60rem) {
    body { display: flex; flex-direction: column; height: 100vh; }
    main { flex: 1; grid-template-columns: minmax(0, 2fr) minmax(0, 1.6fr) minmax(0, 1fr); grid-template-rows: minmax(0, 1fr); min-height: 0; }
    section { min-height: 0; }
  }
  h2 { font-size: 15px; margin: 0; padding: .5rem .75rem; background: #f3f4f6; border-bottom: 1px solid #d1d5db; overflow-wrap: anywhere; }
  h3 { font-size: 14px; margin: .75rem .75rem .25rem; }
  ol, ul { list-style: none; margin: 0; padding: .5rem .75rem; }
  .log { flex: 1; overflow-y: auto; min-height: 8rem; }
  .log li { padding: .3rem 0; border-bottom: 1px dotted #e5e7eb; overflow-wrap: anywhere; }
  .meta { display: block; color: #4b5563; font-size: 13px; }
  .meta b { color: #111827; }
  .history { color: #374151; }
  .divider { text-align: center; color: #4b5563; font-size: 13px; }
  .error { color: #b91c1c; }
  dl.fields { display: grid; grid-template-columns: auto minmax(0, 1fr); gap: 0 .6rem; margin: .15rem 0 0; font-size: 14px; }
  dl.fields dt { color: #4b5563; }
  dl.fields dd { margin: 0; overflow-wrap: anywhere; }
  code { font: 13px/1.4 ui-monospace, Menlo, Consolas, monospace; white-space: pre-wrap; overflow-wrap: anywhere; }
  form.bar { display: flex; flex-wrap: wrap; gap: .4rem; align-items: center; padding: .5rem; border-top: 1px solid #d1d5db; }
  form.bar input { flex: 1 1 7rem; }
  #room-form { border-top: 0; border-bottom: 1px solid #d1d5db; }
  .node { display: inline-block; margin-left: .3rem; padding: 0 .4rem; border-radius: 999px; background: #e0e7ff; color: #1e3a8a; font-size: 13px; }
  #people li, #nodes li { padding: .25rem 0; overflow-wrap: anywhere; }
  .hint { margin: 0 .5rem .5rem; font-size: 13px; color: #4b5563; min-height: 1.2em; }
</style>
</head>
<body>
<header>
  <h1>fastify-wsc</h1>
  <form id="login">
    <label for="user">Your name</label>
    <input id="user" name="user" autocomplete="username" required maxlength="64" pattern="[A-Za-z0-9._\\-]+" title="letters, digits, dot, underscore, hyphen">
    <button id="connect" type="submit">Connect</button>
  </form>
  <div id="status" role="status" data-state="idle">Not connected</div>
</header>
<div id="notice" role="alert" hidden></div>
<main>
  <section aria-labelledby="room-title">
    <h2 id="room-title">Room</h2>
    <form id="room-form" class="bar">
      <label for="room">Room</label>
      <input id="room" name="room" required maxlength="64" value="lobby">
      <button id="switch" type="submit">Switch room</button>
    </form>
    <ol id="chat" class="log" role="log" aria-live="polite" aria-label="Room messages"></ol>
    <form id="chat-form" class="bar">
      <label for="chat-text" class="sr-only">Message to the room</label>
      <input id="chat-text" placeholder="Message to the room" autocomplete="off" required>
      <button id="chat-send" type="submit">Send</button>
    </form>
  </section>
  <section aria-labelledby="notes-title">
    <h2 id="notes-title">Direct messages and notifications</h2>
    <ol id="notes" class="log" role="log" aria-live="polite" aria-label="Direct messages and notifications"></ol>
    <form id="dm-form" class="bar">
      <label for="dm-to">To</label>
      <input id="dm-to" list="people-names" autocomplete="off" required maxlength="64">
      <label for="dm-text" class="sr-only">Direct message</label>
      <input id="dm-text" placeholder="Direct message" autocomplete="off" required>
      <button id="dm-send" type="submit">Send</button>
    </form>
    <p id="dm-hint" class="hint" aria-live="polite"></p>
  </section>
  <section aria-labelledby="people-title">
    <h2 id="people-title">In this room</h2>
    <ul id="people" aria-label="People in this room"></ul>
    <h3 id="nodes-title">Nodes</h3>
    <ul id="nodes" aria-labelledby="nodes-title"></ul>
    <datalist id="people-names"></datalist>
  </section>
</main>
<script type="module">
import { WscClient } from '/client.js'

const $ = (id) => document.getElementById(id)
const HEARTBEAT_MS = 20000
const FORGET_MS = 50000
let client
let user = ''
let room = ''
let historySeq = 0
let countdown
const seen = new Set()
const people = new Map()

function el (tag, className, text) {
  const node = document.createElement(tag)
  if (className) node.className = className
  if (text !== undefined) node.textContent = text
  return node
}

// Payloads: a string as text, {text} as its text (other fields listed), any other JSON as fields.
function renderData (data) {
  if (typeof data === 'string') return [document.createTextNode(data)]
  if (data !== null && typeof data === 'object' && !Array.isArray(data)) {
    const out = []
    const rest = Object.entries(data).filter(([key, value]) => !(key === 'text' && typeof value === 'string'))
    if (typeof data.text === 'string') out.push(document.createTextNode(data.text))
    if (rest.length > 0) {
      const dl = el('dl', 'fields')
      for (const [key, value] of rest) {
        const dd = el('dd')
        if (value !== null && typeof value === 'object') dd.append(el('code', '', JSON.stringify(value)))
        else dd.textContent = String(value)
        dl.append(el('dt', '', key), dd)
      }
      out.push(dl)
    }
    return out
  }
  return [el('code', '', JSON.stringify(data))]
}

function time (ts) {
  return new Date(ts ?? Date.now()).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
}

function add (list, who, data, { ts, className, id } = {}) {
  const li = el('li', className)
  if (id) li.dataset.id = id
  const meta = el('span', 'meta')
  meta.append(el('b', '', who), ' · ' + time(ts) + (className === 'history' ? ' · stored' : ''))
  li.append(meta, ...renderData(data))
  $(list).append(li)
  $(list).scrollTop = $(list).scrollHeight
}

function setStatus (text, state) {
  $('status').textContent = text
  $('status').dataset.state = state
  $('status').dataset.node = state === 'open' ? client.nodeId : ''
}

function showStatus (status, detail) {
  clearInterval(countdown)
  const node = client?.nodeId ? ' · node ' + client.nodeId : ''
  if (status === 'open') return setStatus('Connected as ' + user + node, 'open')
  if (status === 'connecting') return setStatus(detail.attempt ? 'Reconnecting… (attempt ' + detail.attempt + ')' : 'Connecting…', 'connecting')
  if (status === 'closed') {
    $('connect').textContent = 'Connect'
    // Disconnected, the page no longer hears who is in the room or which nodes there are: show nothing rather than stale names.
    people.clear()
    showPeople()
    $('nodes').replaceChildren()
    return setStatus(detail.failure ? 'Disconnected: ' + detail.failure.message : 'Not connected', 'closed')
  }
  if (status === 'reconnecting') {
    const until = Date.now() + detail.delayMs
    const why = detail.failure ? detail.failure.message : 'connection lost'
    const tick = () => setStatus('Reconnecting in ' + Math.max(0, Math.ceil((until - Date.now()) / 1000)) + ' s (' + why + ')', 'reconnecting')
    tick()
    countdown = setInterval(tick, 1000)
  }
}

function notice (text) {
  $('notice').textContent = text
  $('notice').hidden = false
}

async function api (path) {
  try {
    const response = await fetch(path)
    return response.ok ? await response.json() : undefined
  } catch {
    return undefined
  }
}

async function showNodes () {
  const body = await api('/api/nodes')
  const list = $('nodes')
  list.replaceChildren()
  if (body === undefined) {
    list.append(el('li', 'meta', 'the API is closed to this page (WSC_API_TOKEN, or not exposed here)'))
    return
  }
  for (const node of body.nodes) {
    const li = el('li', '', node.id)
    li.dataset.node = node.id
    // A node that stopped heartbeating (killed) stays listed until its registry entry expires.
    const silentS = Math.round((Date.now() - node.heartbeatAt) / 1000)
    const meta = node.connections + ' connection' + (node.connections === 1 ? '' : 's') + (node.id === client?.nodeId ? ' · yours' : '') + (silentS > 10 ? ' · silent for ' + silentS + ' s' : '')
    li.append(el('span', 'meta', meta))
    list.append(li)
  }
}

function showPeople () {
  const now = Date.now()
  for (const [name, entry] of people) if (now - entry.at > FORGET_MS) people.delete(name)
  const list = $('people')
  list.replaceChildren()
  const names = [...people.keys()].sort()
  for (const name of names) {
    const li = el('li', '', name + (name === user ? ' (you)' : ''))
    li.dataset.user = name
    li.dataset.node = people.get(name).node
    li.append(el('span', 'node', people.get(name).node))
    list.append(li)
  }
  $('people-names').replaceChildren(...names.filter((n) => n !== user).map((n) => { const o = el('option'); o.value = n; return o }))
}

function announce (presence, target = room) {
  if (!client || !target) return Promise.resolve()
  return client.publish({ room: target }, { presence, node: client.nodeId }).catch(() => {})
}

function onPresence (message) {
  const { presence, node } = message.data
  if (message.to.room !== room || !message.from) return
  if (presence === 'leave') people.delete(message.from)
  else people.set(message.from, { node: String(node), at: Date.now() })
  if (presence === 'join' && message.from !== user) announce('here')
  showPeople()
  showNodes()
}

function onMessage (message) {
  if (seen.has(message.id)) return
  seen.add(message.id)
  if ('room' in message.to) {
    if (message.data && typeof message.data === 'object' && 'presence' in message.data) return onPresence(message)
    if (message.to.room === room) add('chat', message.from ?? 'server', message.data, { ts: message.ts, id: message.id })
    return
  }
  const history = message.seq !== undefined && message.seq <= historySeq
  const who = message.from === null ? ('broadcast' in message.to ? 'server (broadcast)' : 'server') : message.from
  add('notes', who, message.data, { ts: message.ts, className: history ? 'history' : '', id: message.id })
}

async function enterRoom (next) {
  await client.join(next)
  const previous = room
  room = next
  localStorage.setItem('wsc.demo.room', room)
  $('room-title').textContent = 'Room ' + room
  $('room').value = room
  people.clear()
  people.set(user, { node: client.nodeId, at: Date.now() })
  showPeople()
  if (previous && previous !== next) {
    await announce('leave', previous)
    await client.leave(previous).catch(() => {})
    $('chat').append(el('li', 'divider', 'you left ' + previous + ' and joined ' + next))
  }
  await announce('join')
}

function connect () {
  const name = $('user').value.trim()
  if (!$('login').reportValidity()) return
  client?.close()
  user = name
  room = ''
  historySeq = 0
  seen.clear()
  people.clear()
  $('chat').replaceChildren()
  $('notes').replaceChildren()
  $('notice').hidden = true
  localStorage.setItem('wsc.demo.user', user)
  const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws'
  // since 0: everything the server still holds for this user, so a reload shows the stored messages.
  client = new WscClient({ url, token: user, since: 0 })
  client.on('status', showStatus)
  client.on('welcome', (welcome) => {
    if (historySeq === 0) historySeq = welcome.seq
  })
  client.on('reset', (reset) => notice('The server lost part of your message history (' + reset.reason + '): messages after #' + reset.previousSeq + ' may be missing. Showing what it still holds.'))
  client.on('message', onMessage)
  client.on('status', (status) => {
    if (status !== 'open') return
    const wanted = room || $('room').value.trim() || 'lobby'
    // After a reconnect the client has rejoined the room itself: only say where we are now.
    if (client.rooms.includes(wanted)) {
      people.set(user, { node: client.nodeId, at: Date.now() })
      showPeople()
      announce('join')
    } else {
      enterRoom(wanted).catch((err) => add('chat', 'error', err.message, { className: 'error' }))
    }
    showNodes()
  })
  client.connect()
  $('connect').textContent = 'Disconnect'
}

$('login').addEventListener('submit', (event) => {
  event.preventDefault()
  if (client && client.status !== 'closed' && $('user').value.trim() === user) {
    announce('leave')
    client.close()
    return
  }
  connect()
})

$('room-form').addEventListener('submit', (event) => {
  event.preventDefault()
  const next = $('room').value.trim()
  if (!client || client.status !== 'open') return add('chat', 'error', 'not connected', { className: 'error' })
  if (next === room) return
  enterRoom(next).catch((err) => {
    $('room').value = room
    add('chat', 'error', 'cannot join ' + next + ': ' + err.message, { className: 'error' })
  })
})

$('chat-form').addEventListener('submit', (event) => {
  event.preventDefault()
  const text = $('chat-text').value
  if (!client || !room) return add('chat', 'error', 'not connected', { className: 'error' })
  client.publish({ room }, { text }).then(() => { $('chat-text').value = '' }, (err) => add('chat', 'error', err.message, { className: 'error' }))
})

$('dm-form').addEventListener('submit', (event) => {
  event.preventDefault()
  const to = $('dm-to').value.trim()
  const text = $('dm-text').value
  if (!client) return add('notes', 'error', 'not connected', { className: 'error' })
  client.publish({ user: to }, { text }).then(() => {
    $('dm-text').value = ''
    add('notes', 'you → ' + to, { text })
  }, (err) => add('notes', 'error', err.message, { className: 'error' }))
})

$('dm-to').addEventListener('change', async () => {
  const to = $('dm-to').value.trim()
  const body = to ? await api('/api/presence/' + encodeURIComponent(to)) : undefined
  if (body === undefined || to !== $('dm-to').value.trim()) return ($('dm-hint').textContent = '')
  const nodes = [...new Set(body.connections.map((c) => c.nodeId))]
  $('dm-hint').textContent = body.online ? to + ' is online on ' + nodes.join(', ') : to + ' is offline: the message waits for them'
})

setInterval(() => {
  if (client?.status === 'open' && room) announce('here')
  showPeople()
}, HEARTBEAT_MS)
setInterval(() => { if (client?.status === 'open') showNodes() }, 5000)
addEventListener('pagehide', () => { announce('leave') })

const params = new URLSearchParams(location.search)
$('user').value = params.get('user') ?? localStorage.getItem('wsc.demo.user') ?? ''
$('room').value = params.get('room') ?? localStorage.getItem('wsc.demo.room') ?? 'lobby'
// ?user= and ?room= fill the form once; a reload then resumes from what the page remembers.
if (location.search) history.replaceState(null, '', location.pathname)
if ($('user').value) connect()
else $('user').focus()
</script>
</body>
</html>
`
