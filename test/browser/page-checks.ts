import type { Page } from 'playwright-core'

// Checks of the demo page that run in the browser. They are strings because the project's TypeScript
// has no DOM library; each returns JSON-safe data.

/** Waits until the page's status says it is connected; returns the node it names. */
export async function waitOpen (page: Page, ms = 15_000): Promise<string> {
  const status = page.locator('#status[data-state="open"]')
  await status.waitFor({ timeout: ms })
  return (await status.getAttribute('data-node')) ?? ''
}

/** Waits for an item of list `#id` that contains `text`. */
export async function waitItem (page: Page, id: string, text: string, ms = 10_000): Promise<void> {
  await page.locator(`#${id} li`, { hasText: text }).first().waitFor({ timeout: ms })
}

/** How many items of list `#id` contain `text`. */
export async function countItems (page: Page, id: string, text: string): Promise<number> {
  return page.locator(`#${id} li`, { hasText: text }).count()
}

/** Width the document overflows the viewport by, and which of `selectors` are cut off on the right. */
export async function overflow (page: Page, selectors: string[]): Promise<{ scrollWidth: number, innerWidth: number, offscreen: string[] }> {
  return page.evaluate(`(() => {
    const selectors = ${JSON.stringify(selectors)}
    const offscreen = selectors.filter((s) => {
      const box = document.querySelector(s)?.getBoundingClientRect()
      return !box || box.width === 0 || box.left < 0 || box.right > innerWidth
    })
    return { scrollWidth: document.documentElement.scrollWidth, innerWidth, offscreen }
  })()`)
}

/** Inputs and buttons without an accessible name (a label, aria-label, or text). */
export async function unlabelled (page: Page): Promise<string[]> {
  return page.evaluate(`[...document.querySelectorAll('input, button, select, textarea')]
    .filter((el) => !(el.labels?.length > 0 || el.getAttribute('aria-label') || (el.tagName === 'BUTTON' && el.textContent.trim())))
    .map((el) => el.id || el.outerHTML)`)
}

/**
 * Visible text whose contrast with its background is below WCAG AA (4.5:1; 3:1 for large text), as
 * "text: ratio". The background is the first opaque one among the element and its ancestors.
 */
export async function lowContrast (page: Page): Promise<string[]> {
  return page.evaluate(`(() => {
    const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number)
    const lum = ([r, g, b]) => {
      const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4 }
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b)
    }
    const background = (el) => {
      for (let e = el; e; e = e.parentElement) {
        const c = rgb(getComputedStyle(e).backgroundColor)
        if (c.length === 3 || (c.length === 4 && c[3] === 1)) return c.slice(0, 3)
      }
      return [255, 255, 255]
    }
    const failures = []
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT)
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const el = node.parentElement
      if (!node.textContent.trim() || !el || el.closest('[hidden], script, style, .sr-only')) continue
      const style = getComputedStyle(el)
      if (style.visibility === 'hidden' || el.getClientRects().length === 0) continue
      const [l1, l2] = [lum(rgb(style.color).slice(0, 3)), lum(background(el))].sort((a, b) => b - a)
      const ratio = (l1 + 0.05) / (l2 + 0.05)
      const size = parseFloat(style.fontSize)
      const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700)
      if (ratio < (large ? 3 : 4.5)) failures.push(node.textContent.trim().slice(0, 40) + ': ' + ratio.toFixed(2))
    }
    return failures
  })()`)
}

/** The ids of the elements focused by pressing Tab `count` times from `startId`. */
export async function tabOrder (page: Page, startId: string, count: number): Promise<string[]> {
  await page.focus(`#${startId}`)
  const order: string[] = []
  for (let i = 0; i < count; i++) {
    await page.keyboard.press('Tab')
    order.push(await page.evaluate('document.activeElement?.id ?? ""'))
  }
  return order
}
