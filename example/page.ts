/** The demo page at `/`: chat in rooms and direct notifications, built on the browser client at `/client.js`. */
export const demoPage = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>fastify-wsc demo</title>
<link rel="icon" href="data:,">
<style>
  body { font: 15px/1.4 system-ui, sans-serif; margin: 0; display: grid; grid-template-rows: auto 1fr; height: 100vh; }
  header { display: flex; gap: .5rem; align-items: center; padding: .6rem 1rem; background: #1f2937; color: #f9fafb; flex-wrap: wrap; }
  header input, header button { font: inherit; }
  #status { margin-left: auto; font-size: 13px; opacity: .85; }
  main { display: grid; grid-template-columns: 2fr 1fr; gap: 1rem; padding: 1rem; min-height: 0; }
  section { display: flex; flex-direction: column; min-height: 0; border: 1px solid #d1d5db; border-radius: 6px; }
  h2 { font-size: 14px; margin: 0; padding: .5rem .75rem; background: #f3f4f6; border-bottom: 1px solid #d1d5db; }
  ol { list-style: none; margin: 0; padding: .5rem .75rem; overflow-y: auto; flex: 1; }
  li { padding: .2rem 0; border-bottom: 1px dotted #e5e7eb; }
  li small { color: #6b7280; margin-right: .4rem; }
  form { display: flex; gap: .4rem; padding: .5rem; border-top: 1px solid #d1d5db; }
  form input { flex: 1; font: inherit; padding: .3rem; }
</style>
</head>
<body>
<header>
  <strong>fastify-wsc</strong>
  <label>user <input id="user" value="alice" size="10"></label>
  <label>room <input id="room" value="lobby" size="10"></label>
  <button id="connect">Connect</button>
  <span id="status">disconnected</span>
</header>
<main>
  <section>
    <h2 id="room-title">Room</h2>
    <ol id="chat"></ol>
    <form id="chat-form"><input id="chat-text" placeholder="Message to the room" autocomplete="off"><button>Send</button></form>
  </section>
  <section>
    <h2>Notifications (durable, resumed with since)</h2>
    <ol id="notes"></ol>
    <form id="dm-form"><input id="dm-to" placeholder="to user" size="8"><input id="dm-text" placeholder="direct message" autocomplete="off"><button>Send</button></form>
  </section>
</main>
<script type="module">
import { WscClient } from '/client.js'
const $ = (id) => document.getElementById(id)
let client
function add (list, from, text) {
  const li = document.createElement('li')
  const who = document.createElement('small')
  who.textContent = from ?? 'server'
  li.append(who, typeof text === 'string' ? text : JSON.stringify(text))
  $(list).append(li)
  $(list).scrollTop = $(list).scrollHeight
}
$('connect').onclick = () => {
  client?.close()
  const user = $('user').value.trim()
  const room = $('room').value.trim()
  const seqKey = 'wsc.lastSeq.' + user
  const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws'
  client = new WscClient({
    url,
    token: user,
    since: Number(localStorage.getItem(seqKey) ?? 0),
    onStatus: (status, detail) => { $('status').textContent = status + (detail?.code ? ' (' + detail.code + ')' : '') + (client?.nodeId ? ' · node ' + client.nodeId : '') },
    onWelcome: () => client.join(room).then(() => { $('room-title').textContent = 'Room ' + room }, (err) => add('chat', 'error', err.message)),
    onMessage: (message) => {
      if ('room' in message.to) add('chat', message.from, message.data)
      else add('notes', message.from, message.data)
      if (message.seq) localStorage.setItem(seqKey, String(client.lastSeq))
    }
  })
  client.connect()
}
$('chat-form').onsubmit = (event) => {
  event.preventDefault()
  const text = $('chat-text').value
  if (!client || !text) return
  client.publish({ room: $('room').value.trim() }, text).then(() => { $('chat-text').value = '' }, (err) => add('chat', 'error', err.message))
}
$('dm-form').onsubmit = (event) => {
  event.preventDefault()
  const to = $('dm-to').value.trim()
  const text = $('dm-text').value
  if (!client || !to || !text) return
  client.publish({ user: to }, text).then(() => { $('dm-text').value = ''; add('notes', 'you → ' + to, text) }, (err) => add('notes', 'error', err.message))
}
</script>
</body>
</html>
`
