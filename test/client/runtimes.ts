import { readFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import WebSocket from 'ws'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { WscClient, type WscClientOptions } from 'fastify-wsc/client'
import { launchChromium, ROOT } from '../browser/chromium.js'
import { within } from '../helper.js'

// One client test file runs against both runtimes the client supports: Node with the `ws` package and
// a real browser's WebSocket (Chromium through playwright-core). Both report the same events to Node.

/** A client event as the test sees it (JSON-safe, whichever runtime produced it). */
export interface Recorded {
  type: 'status' | 'welcome' | 'message' | 'reset' | 'joined' | 'left' | 'error'
  args: any[]
}

/** Options that cross into a browser: everything but functions and the WebSocket class. */
export type PlainOptions = Omit<WscClientOptions, 'WebSocket' | 'onMessage' | 'onStatus' | 'onWelcome'>

/** The outcome of a client method, with a rejection as data. */
export type CallResult = { ok: true, value?: unknown } | { ok: false, code: string, message: string }

export interface ClientUnderTest {
  readonly events: Recorded[]
  /** Resolves once `predicate(events)` holds, failing after `ms` with `what`. */
  until: (predicate: (events: Recorded[]) => boolean, what: string, ms?: number) => Promise<void>
  call: (method: 'publish' | 'join' | 'leave' | 'close' | 'connect', ...args: unknown[]) => Promise<CallResult>
  /** A getter's value (`status`, `lastSeq`, `epoch`, `failure`, …). */
  get: (property: string) => Promise<unknown>
}

export interface Runtime {
  readonly name: 'node' | 'chromium'
  /** Creates a client with `options`, records its events, and connects it. */
  start: (options: PlainOptions & { throwOnMessage?: boolean }) => Promise<ClientUnderTest>
  close: () => Promise<void>
}

const EVENT_TYPES: Array<Recorded['type']> = ['status', 'welcome', 'message', 'reset', 'joined', 'left', 'error']

function recorder (): { events: Recorded[], push: (event: Recorded) => void, until: ClientUnderTest['until'] } {
  const events: Recorded[] = []
  let waiters: Array<() => void> = []
  return {
    events,
    push: (event) => {
      events.push(event)
      const wake = waiters
      waiters = []
      for (const w of wake) w()
    },
    until: async (predicate, what, ms = 10_000) => within((async () => {
      while (!predicate(events)) await new Promise<void>((resolve) => waiters.push(resolve))
    })(), ms, `${what}; events so far: ${JSON.stringify(events.map((e) => [e.type, e.args[0]]))}`)
  }
}

function settle (promise: Promise<unknown> | undefined): Promise<CallResult> {
  return Promise.resolve(promise).then((value) => ({ ok: true as const, value }), (err: { code?: string, message?: string }) => ({ ok: false as const, code: String(err.code), message: String(err.message) }))
}

/** The client in this Node process, on the `ws` package. */
export function nodeRuntime (): Runtime {
  const clients: WscClient[] = []
  return {
    name: 'node',
    start: async ({ throwOnMessage, ...options }) => {
      const client = new WscClient({ ...options, WebSocket })
      clients.push(client)
      const rec = recorder()
      for (const type of EVENT_TYPES) {
        client.on(type, (...args: unknown[]) => rec.push({ type, args: type === 'error' ? [String(args[0])] : JSON.parse(JSON.stringify(args)) }))
      }
      if (throwOnMessage === true) client.on('message', () => { throw new Error('a listener bug') })
      client.connect()
      return {
        events: rec.events,
        until: rec.until,
        call: async (method, ...args) => settle((client[method] as (...a: unknown[]) => Promise<unknown> | undefined)(...args)),
        get: async (property) => JSON.parse(JSON.stringify((client as unknown as Record<string, unknown>)[property] ?? null))
      }
    },
    close: async () => { for (const client of clients) client.close() }
  }
}

const HARNESS_PAGE = `<!doctype html><meta charset="utf-8"><title>client harness</title><link rel="icon" href="data:,">
<script type="module">
import { WscClient } from '/client.js'
window.startClient = (options, throwOnMessage) => {
  const client = new WscClient(options)
  for (const type of ${JSON.stringify(EVENT_TYPES)}) {
    client.on(type, (...args) => window.wscEvent({ type, args: type === 'error' ? [String(args[0])] : JSON.parse(JSON.stringify(args)) }))
  }
  if (throwOnMessage) client.on('message', () => { throw new Error('a listener bug') })
  window.client = client
  client.connect()
}
window.harnessReady = true
</script>`

/** Serves the harness page and the published client bundle (dist/client/wsc-client.js). */
export async function serveHarness (): Promise<{ url: string, server: Server }> {
  const bundle = readFileSync(`${ROOT}dist/client/wsc-client.js`)
  const server = createServer((request, response) => {
    if (request.url === '/client.js') response.writeHead(200, { 'content-type': 'text/javascript' }).end(bundle)
    else response.writeHead(200, { 'content-type': 'text/html' }).end(HARNESS_PAGE)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, server }
}

/** The client in a Chromium page, loaded from the published bundle. */
export async function chromiumRuntime (): Promise<Runtime & { browser: Browser, consoleErrors: string[] }> {
  const browser = await launchChromium()
  const harness = await serveHarness()
  const contexts: BrowserContext[] = []
  const consoleErrors: string[] = []
  return {
    name: 'chromium',
    browser,
    consoleErrors,
    start: async ({ throwOnMessage, ...options }) => {
      const context = await browser.newContext()
      contexts.push(context)
      const page: Page = await context.newPage()
      page.on('console', (message) => { if (message.type() === 'error') consoleErrors.push(message.text()) })
      page.on('pageerror', (err) => consoleErrors.push(`pageerror: ${err.message}`))
      const rec = recorder()
      await page.exposeFunction('wscEvent', (event: Recorded) => rec.push(event))
      await page.goto(harness.url)
      await page.waitForFunction(() => (globalThis as unknown as { harnessReady?: boolean }).harnessReady === true, undefined, { timeout: 10_000 })
      await page.evaluate(([o, t]) => (globalThis as unknown as { startClient: (o: unknown, t: boolean) => void }).startClient(o, t), [options, throwOnMessage === true] as const)
      return {
        events: rec.events,
        until: rec.until,
        call: async (method, ...args) => page.evaluate(async ([m, a]) => {
          const client = (globalThis as unknown as { client: Record<string, (...x: unknown[]) => Promise<unknown> | undefined> }).client
          try {
            const value = await client[m]?.(...a)
            return { ok: true as const, value }
          } catch (err) {
            return { ok: false as const, code: String((err as { code?: string }).code), message: String((err as Error).message) }
          }
        }, [method, args] as const),
        get: async (property) => page.evaluate((p) => JSON.parse(JSON.stringify((globalThis as unknown as { client: Record<string, unknown> }).client[p] ?? null)), property)
      }
    },
    close: async () => {
      for (const context of contexts) await context.close().catch(() => {})
      await new Promise((resolve) => harness.server.close(resolve))
      await browser.close()
    }
  }
}

/** Statuses in order, as `status` or `status:kind` (the failure's kind) when there was one. */
export function statuses (events: Recorded[]): string[] {
  return events.filter((e) => e.type === 'status').map((e) => {
    const detail = e.args[1] as { failure?: { kind: string } } | undefined
    return detail?.failure === undefined ? String(e.args[0]) : `${String(e.args[0])}:${detail.failure.kind}`
  })
}

/** The detail of every `status` event with `status`. */
export function details (events: Recorded[], status: string): Array<{ failure?: { kind: string, message: string, final: boolean, status?: number, code?: number, retryAfterMs?: number }, delayMs?: number, attempt?: number, code?: number }> {
  return events.filter((e) => e.type === 'status' && e.args[0] === status).map((e) => e.args[1])
}

export function messages (events: Recorded[]): Array<{ id: string, seq?: number, data: unknown }> {
  return events.filter((e) => e.type === 'message').map((e) => e.args[0])
}
