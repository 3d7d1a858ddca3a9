import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { CONFIG_KEYS } from '../../lib/config.js'

test('docs/configuration.md documents every configuration key and env var', () => {
  const doc = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8')
  for (const spec of CONFIG_KEYS) {
    assert.ok(doc.includes(`\`${spec.key}\``), `${spec.key} is missing from docs/configuration.md`)
    for (const name of spec.env ?? []) assert.ok(doc.includes(`\`${name}\``), `${name} is missing from docs/configuration.md`)
  }
})
