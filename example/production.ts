/**
 * Why the example must not start as it is configured: with `NODE_ENV=production`, development auth (no
 * `WSC_JWT_SECRET`: any user id is its own token) or an open `/api` (no `WSC_API_TOKEN`). One line
 * naming what to set, or undefined when it may start.
 */
export function productionRefusal (env: Readonly<Record<string, string | undefined>>): string | undefined {
  if (env.NODE_ENV !== 'production') return undefined
  const missing = [
    (env.WSC_JWT_SECRET ?? '') === '' ? 'WSC_JWT_SECRET (unset, any user id is accepted as its own token)' : undefined,
    (env.WSC_API_TOKEN ?? '') === '' ? 'WSC_API_TOKEN (unset, anyone can send through /api)' : undefined
  ].filter((text) => text !== undefined)
  return missing.length === 0 ? undefined : `NODE_ENV=production: set ${missing.join(' and ')}`
}
