import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import type { Browser } from 'playwright-core'
import type { FastifyInstance } from 'fastify'
import { buildExampleApp } from '../../example/app.js'
import { artifact, launchChromium, openWatched, unexpectedConsoleErrors, type WatchedPage } from './chromium.js'
import { countItems, lowContrast, overflow, tabOrder, unlabelled, waitItem, waitOpen } from './page-checks.js'

// The demo page of the example app (embedded mode) in Chromium, as two people would use it.

let browser: Browser
let app: FastifyInstance
let base: string
const watched: WatchedPage[] = []

before(async () => {
  app = await buildExampleApp({ fastify: { logger: false }, wsc: { server: { nodeId: 'wsc-page' } } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  browser = await launchChromium()
})
after(async () => {
  await browser?.close()
  await app?.close()
})

async function open (user: string, viewport = { width: 1280, height: 800 }, query = ''): Promise<WatchedPage> {
  const context = await browser.newContext({ viewport })
  const page = await openWatched(context, `${base}/?user=${user}${query}`)
  watched.push(page)
  return page
}

async function post (path: string, body: unknown): Promise<unknown> {
  const response = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  assert.equal(response.status, 200, await response.clone().text())
  return response.json()
}

test('two people chat in a room and by direct message; JSON payloads are readable; a reload shows the stored messages', async () => {
  const alice = await open('alice', undefined, '&room=lobby')
  const bob = await open('bob', { width: 390, height: 844 }, '&room=lobby')
  assert.equal(await waitOpen(alice.page), 'wsc-page')
  await waitOpen(bob.page)

  // Each sees the other in the room, with the node they are on.
  await alice.page.locator('#people li[data-user="bob"][data-node="wsc-page"]').waitFor({ timeout: 10_000 })
  await bob.page.locator('#people li[data-user="alice"][data-node="wsc-page"]').waitFor({ timeout: 10_000 })
  assert.equal(await alice.page.locator('#room-title').textContent(), 'Room lobby')

  await alice.page.fill('#chat-text', 'hello bob')
  await alice.page.press('#chat-text', 'Enter')
  await waitItem(bob.page, 'chat', 'hello bob')
  assert.match(await bob.page.locator('#chat li', { hasText: 'hello bob' }).textContent() ?? '', /^alice ·/)

  await bob.page.fill('#dm-to', 'alice')
  await bob.page.fill('#dm-text', 'psst, alice')
  await bob.page.click('#dm-send')
  await waitItem(alice.page, 'notes', 'psst, alice')
  await waitItem(bob.page, 'notes', 'you → alice')

  // The README's curl sends {"text":…}; other objects become fields, never raw JSON.
  await post('/api/send', { to: { user: 'alice' }, data: { text: 'from the server' } })
  await post('/api/send', { to: { user: 'alice' }, data: { order: 42, status: 'shipped', items: ['tea', 'cups'] } })
  await waitItem(alice.page, 'notes', 'from the server')
  await waitItem(alice.page, 'notes', 'shipped')
  const notes = await alice.page.locator('#notes').textContent() ?? ''
  assert.doesNotMatch(notes, /\{"text"/)
  assert.equal(await alice.page.locator('#notes li dl.fields dt', { hasText: 'order' }).count(), 1)
  assert.equal(await alice.page.locator('#notes li dl.fields dd', { hasText: '42' }).count(), 1)

  // Switching rooms needs no reconnect, and publishing goes to the room the page is in.
  const [before] = await app.wsc.presence('alice')
  await alice.page.fill('#room', 'other-room')
  await alice.page.click('#switch')
  await alice.page.locator('#room-title', { hasText: 'Room other-room' }).waitFor({ timeout: 10_000 })
  await alice.page.fill('#chat-text', 'anyone here?')
  await alice.page.press('#chat-text', 'Enter')
  await waitItem(alice.page, 'chat', 'anyone here?')
  assert.equal(await countItems(alice.page, 'chat', 'not allowed'), 0)
  // A message to lobby sent after alice's reaches bob after anything alice's could have sent him.
  await post('/api/send', { to: { room: 'lobby' }, data: { text: 'lobby barrier' } })
  await waitItem(bob.page, 'chat', 'lobby barrier')
  assert.equal(await countItems(bob.page, 'chat', 'anyone here?'), 0, 'bob is still in lobby')
  await bob.page.locator('#people li[data-user="alice"]').waitFor({ state: 'detached', timeout: 10_000 })
  const [after] = await app.wsc.presence('alice')
  assert.equal(after?.connectionId, before?.connectionId, 'the same connection')

  await alice.page.screenshot({ path: artifact('page-desktop.png') })
  await bob.page.screenshot({ path: artifact('page-390.png'), fullPage: true })

  // A reload: the stored messages are shown again (once each), and the room is remembered.
  await alice.page.reload()
  await waitOpen(alice.page)
  await waitItem(alice.page, 'notes', 'psst, alice')
  await waitItem(alice.page, 'notes', 'shipped')
  assert.equal(await countItems(alice.page, 'notes', 'psst, alice'), 1)
  assert.equal(await countItems(alice.page, 'notes', 'from the server'), 1)
  assert.equal(await alice.page.locator('#notes li.history').count(), 3, 'marked as earlier messages')
  await alice.page.locator('#room-title', { hasText: 'Room other-room' }).waitFor({ timeout: 10_000 })
})

test('a dropped connection shows a countdown, then resumes without losing or repeating a message', async () => {
  const carol = await open('carol')
  await waitOpen(carol.page)
  await post('/api/send', { to: { user: 'carol' }, data: { text: 'one' } })
  await waitItem(carol.page, 'notes', 'one')
  const [entry] = await app.wsc.presence('carol')
  assert.ok(entry)
  await app.wsc.disconnect(entry.connectionId)
  await post('/api/send', { to: { user: 'carol' }, data: { text: 'two' } })
  await waitItem(carol.page, 'notes', 'two')
  await waitOpen(carol.page)
  assert.ok(carol.statusTexts.some((text) => /^Reconnecting in \d+ s \(closed by the server \(1000/.test(text)), carol.statusTexts.join(' | '))
  assert.equal(await countItems(carol.page, 'notes', 'one'), 1)
  assert.equal(await countItems(carol.page, 'notes', 'two'), 1)

  // Disconnecting by hand: no one is listed as in the room or as a node from before.
  assert.ok(await carol.page.locator('#people li').count() > 0)
  await carol.page.click('#connect')
  await carol.page.locator('#status', { hasText: 'Not connected' }).waitFor({ timeout: 10_000 })
  assert.equal(await carol.page.locator('#people li').count(), 0, 'no stale roster')
  assert.equal(await carol.page.locator('#nodes li').count(), 0, 'no stale nodes')
})

for (const width of [390, 360]) {
  test(`at ${width} px nothing scrolls sideways and the controls stay on screen`, async () => {
    const dave = await open(`dave-${width}`, { width, height: 800 })
    await waitOpen(dave.page)
    // A long unbroken word and a wide object must wrap, not widen the page.
    await post('/api/send', { to: { user: `dave-${width}` }, data: { text: 'x'.repeat(300), detail: { nested: 'y'.repeat(200) } } })
    await dave.page.locator('#notes li dl.fields').first().waitFor({ timeout: 10_000 })
    const { scrollWidth, innerWidth, offscreen } = await overflow(dave.page, ['#connect', '#status', '#switch', '#chat-send', '#notes', '#dm-send', '#people'])
    assert.ok(scrollWidth <= innerWidth, `scrollWidth ${scrollWidth} <= innerWidth ${innerWidth}`)
    assert.deepEqual(offscreen, [])
    await dave.page.screenshot({ path: artifact(`page-${width}-full.png`), fullPage: true })
  })
}

test('accessible: every control is labelled, Tab follows the layout, text contrast meets WCAG AA', async () => {
  const erin = await open('erin')
  await waitOpen(erin.page)
  await post('/api/send', { to: { user: 'erin' }, data: { text: 'hello', from: 'support' } })
  await waitItem(erin.page, 'notes', 'hello')
  assert.deepEqual(await unlabelled(erin.page), [])
  assert.deepEqual(await tabOrder(erin.page, 'user', 8), ['connect', 'room', 'switch', 'chat-text', 'chat-send', 'dm-to', 'dm-text', 'dm-send'])
  assert.deepEqual(await lowContrast(erin.page), [])
})

test('an embedded-mode restart loses no message: the page notices the new epoch and shows what was sent meanwhile', async (t) => {
  // Its own example app (embedded default: in memory), restarted on the same port while the page stays open.
  const first = await buildExampleApp({ fastify: { logger: false }, wsc: { server: { nodeId: 'wsc-restart' } } })
  await first.listen({ port: 0, host: '127.0.0.1' })
  const port = (first.server.address() as AddressInfo).port
  const apps: FastifyInstance[] = [first]
  t.after(async () => { for (const app of apps) await app.close() })
  const context = await browser.newContext()
  const frank = await openWatched(context, `http://127.0.0.1:${port}/?user=frank`)
  watched.push(frank)
  await waitOpen(frank.page)
  for (const text of ['before-1', 'before-2', 'before-3']) await first.wsc.sendToUser('frank', { text })
  await waitItem(frank.page, 'notes', 'before-3')

  await first.close()
  const second = await buildExampleApp({ fastify: { logger: false }, wsc: { server: { nodeId: 'wsc-restart' } } })
  apps.push(second)
  await second.listen({ port, host: '127.0.0.1' })
  // Seqs 1 and 2 again, in the new process's epoch, while the page still holds seq 3 of the old one.
  await second.wsc.sendToUser('frank', { text: 'missed-1' })
  await second.wsc.sendToUser('frank', { text: 'missed-2' })
  await frank.page.locator('#notice', { hasText: 'lost part of your message history (epoch)' }).waitFor({ timeout: 15_000 })
  await waitItem(frank.page, 'notes', 'missed-2')
  await second.wsc.sendToUser('frank', { text: 'live-1' })
  await waitItem(frank.page, 'notes', 'live-1')
  for (const text of ['before-1', 'before-2', 'before-3', 'missed-1', 'missed-2', 'live-1']) assert.equal(await countItems(frank.page, 'notes', text), 1, text)
  await frank.page.screenshot({ path: artifact('restart-epoch.png') })
})

test('no console errors on any page', () => {
  assert.ok(watched.length >= 5)
  for (const { consoleErrors } of watched) assert.deepEqual(unexpectedConsoleErrors(consoleErrors), [])
})
