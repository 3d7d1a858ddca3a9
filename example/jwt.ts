import { createHmac, timingSafeEqual } from 'node:crypto'

/** Verifies an HS256 JWT and returns its `sub`, or undefined when the token is bad, expired or not yet valid. */
export function verifyHs256 (token: string, secret: string, now = Date.now()): string | undefined {
  const parts = token.split('.')
  if (parts.length !== 3) return undefined
  const [header, payload, signature] = parts as [string, string, string]
  let headerJson: { alg?: unknown }
  let claims: { sub?: unknown, exp?: unknown, nbf?: unknown }
  try {
    headerJson = JSON.parse(Buffer.from(header, 'base64url').toString('utf8'))
    claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'))
  } catch {
    return undefined
  }
  if (headerJson.alg !== 'HS256') return undefined
  const expected = createHmac('sha256', secret).update(`${header}.${payload}`).digest()
  const given = Buffer.from(signature, 'base64url')
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined
  const seconds = now / 1000
  if (typeof claims.exp === 'number' && seconds >= claims.exp) return undefined
  if (typeof claims.nbf === 'number' && seconds < claims.nbf) return undefined
  return typeof claims.sub === 'string' && claims.sub !== '' ? claims.sub : undefined
}

/** Signs an HS256 JWT (tests and local tooling). */
export function signHs256 (claims: Record<string, unknown>, secret: string): string {
  const header = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url')
  const payload = Buffer.from(JSON.stringify(claims)).toString('base64url')
  const signature = createHmac('sha256', secret).update(`${header}.${payload}`).digest('base64url')
  return `${header}.${payload}.${signature}`
}
