import { existsSync, mkdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'

export const ROOT = fileURLToPath(new URL('../../', import.meta.url))

/** Debian's Chromium (package `chromium`); .ci/run installs it. playwright's own download cannot work here. */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

/** Screenshots the browser tests keep as artifacts (ignored by git). */
export const ARTIFACTS = `${ROOT}test-artifacts/browser/`

export async function launchChromium (): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium (.ci/run does), or set CHROMIUM_PATH`)
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    timeout: 30_000
  })
}

/** The path for a screenshot named `name`, creating the artifacts folder. */
export function artifact (name: string): string {
  mkdirSync(ARTIFACTS, { recursive: true })
  return `${ARTIFACTS}${name}`
}

/** A page whose console errors and every status text (#status, recorded by a MutationObserver) are kept. */
export interface WatchedPage {
  page: Page
  consoleErrors: string[]
  /** Each text #status showed, in order. */
  statusTexts: string[]
}

/** Opens `url` in a new page of `context`, recording console errors and the demo page's status texts. */
export async function openWatched (context: BrowserContext, url: string): Promise<WatchedPage> {
  const page = await context.newPage()
  const consoleErrors: string[] = []
  const statusTexts: string[] = []
  page.on('console', (message) => { if (message.type() === 'error') consoleErrors.push(message.text()) })
  page.on('pageerror', (err) => consoleErrors.push(`pageerror: ${err.message}`))
  await page.exposeFunction('recordStatus', (text: string) => statusTexts.push(text))
  await page.addInitScript({
    content: `addEventListener('DOMContentLoaded', () => {
      const status = document.getElementById('status')
      if (status) new MutationObserver(() => recordStatus(status.textContent)).observe(status, { childList: true, characterData: true, subtree: true })
    })`
  })
  await page.goto(url)
  return { page, consoleErrors, statusTexts }
}

/** Console errors other than a WebSocket connect that failed (expected while a node is down). */
export function unexpectedConsoleErrors (errors: string[]): string[] {
  return errors.filter((text) => !/^WebSocket connection to 'ws:\/\/[^']+' failed/.test(text))
}
