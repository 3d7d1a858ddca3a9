import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startLocalCluster } from '../../scripts/local-cluster.js'
import { within } from '../helper.js'
import { artifact, launchChromium, openWatched, unexpectedConsoleErrors } from './chromium.js'
import { countItems, waitItem, waitOpen } from './page-checks.js'

// The demo page on the local three-node cluster (Redis routing, nginx in front, `npm run cluster`):
// alice comes in through nginx, bob straight to another node. alice's node is SIGKILLed while bob and
// the server send to her; her page reconnects through nginx to a surviving node and shows every
// message once.

test('a page whose node is SIGKILLed reconnects to another node and shows every message sent meanwhile, once', async (t) => {
  const cluster = await startLocalCluster({ redis: true })
  t.after(() => cluster.stop())
  const browser = await launchChromium()
  t.after(() => browser.close())

  const alice = await openWatched(await browser.newContext({ viewport: { width: 1000, height: 600 } }), `${cluster.url}/?user=alice&room=lobby`)
  const aliceNode = await waitOpen(alice.page)
  const victim = cluster.nodes.find((node) => node.name === aliceNode)
  assert.ok(victim, `alice is on ${aliceNode}, one of the cluster's nodes`)
  const survivor = cluster.nodes.find((node) => node !== victim)
  assert.ok(survivor)
  const bob = await openWatched(await browser.newContext({ viewport: { width: 390, height: 844 } }), `http://127.0.0.1:${survivor.port}/?user=bob&room=lobby`)
  assert.equal(await waitOpen(bob.page), survivor.name)

  // Each page shows who is in the room and on which node.
  await alice.page.locator(`#people li[data-user="bob"][data-node="${survivor.name}"]`).waitFor({ timeout: 10_000 })
  await bob.page.locator(`#people li[data-user="alice"][data-node="${aliceNode}"]`).waitFor({ timeout: 10_000 })
  // Room chat crosses nodes through Redis.
  await bob.page.fill('#chat-text', `hi from ${survivor.name}`)
  await bob.page.press('#chat-text', 'Enter')
  await waitItem(alice.page, 'chat', `hi from ${survivor.name}`)
  await alice.page.fill('#chat-text', `hello from ${aliceNode}`)
  await alice.page.press('#chat-text', 'Enter')
  await waitItem(bob.page, 'chat', `hello from ${aliceNode}`)
  await bob.page.fill('#dm-to', 'alice')
  await bob.page.fill('#dm-text', 'before the crash')
  await bob.page.click('#dm-send')
  await waitItem(alice.page, 'notes', 'before the crash')
  await alice.page.screenshot({ path: artifact('cluster-before.png') })

  // alice's browser is offline while her node dies, so every send below happens while she is away.
  await alice.page.context().setOffline(true)
  victim.child.kill('SIGKILL')
  await within(victim.exited, 10_000, `${victim.name} to exit`)
  await alice.page.locator('#status[data-state="reconnecting"], #status[data-state="connecting"]').waitFor({ timeout: 10_000 })

  const sent: string[] = []
  for (let i = 1; i <= 3; i++) {
    await bob.page.fill('#dm-text', `meanwhile from bob ${i}`)
    await bob.page.click('#dm-send')
    // Acknowledged by the server: bob's page lists it (the first one is "before the crash").
    await bob.page.locator('#notes li', { hasText: 'you → alice' }).nth(i).waitFor({ timeout: 10_000 })
    sent.push(`meanwhile from bob ${i}`)
  }
  for (let i = 1; i <= 3; i++) {
    const response = await fetch(`http://127.0.0.1:${survivor.port}/api/send`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ to: { user: 'alice' }, data: { text: `meanwhile from the server ${i}` } })
    })
    assert.equal(response.status, 200)
    sent.push(`meanwhile from the server ${i}`)
  }
  assert.notEqual(await alice.page.getAttribute('#status', 'data-state'), 'open', 'alice was still away when the sends were done')

  await alice.page.context().setOffline(false)
  const newNode = await waitOpen(alice.page, 30_000)
  assert.notEqual(newNode, aliceNode, 'reconnected to a surviving node')
  for (const text of sent) await waitItem(alice.page, 'notes', text, 15_000)
  for (const text of [...sent, 'before the crash']) assert.equal(await countItems(alice.page, 'notes', text), 1, `${text} shown once`)
  assert.ok(alice.statusTexts.some((text) => text.startsWith('Reconnecting in ')), 'the countdown was shown')

  // bob sees alice on her new node.
  await bob.page.locator(`#people li[data-user="alice"][data-node="${newNode}"]`).waitFor({ timeout: 10_000 })
  await alice.page.screenshot({ path: artifact('cluster-after.png') })
  for (const page of [alice, bob]) assert.deepEqual(unexpectedConsoleErrors(page.consoleErrors), [])
})
