import { createSigner, createVerifier } from 'fast-jwt'

export interface Hs256VerifierOptions {
  /** The time to check `exp` and `nbf` against, in ms (tests); default: now, at each call. */
  clockTimestamp?: number | undefined
}

/**
 * A verifier of HS256 JWTs (fast-jwt, the verifier @fastify/jwt uses) that returns the token's `sub`,
 * or undefined when the token is not one to trust: another algorithm (pinned to HS256, never `none`),
 * a bad or non-canonical signature, `exp`/`nbf` that are not numbers, an expired or not-yet-valid
 * token, or a `sub` that is not a non-empty string.
 */
export function hs256Verifier (secret: string, options: Hs256VerifierOptions = {}): (token: string) => string | undefined {
  const verify = createVerifier({ key: secret, algorithms: ['HS256'], clockTimestamp: options.clockTimestamp })
  return (token) => {
    // base64url has one spelling per byte string: padding, or unused bits set in the last character,
    // would be a second token with the same signature.
    const signature = token.slice(token.lastIndexOf('.') + 1)
    if (Buffer.from(signature, 'base64url').toString('base64url') !== signature) return undefined
    let claims: { sub?: unknown }
    try {
      claims = verify(token) as { sub?: unknown }
    } catch {
      return undefined
    }
    return typeof claims.sub === 'string' && claims.sub !== '' ? claims.sub : undefined
  }
}

/** Signs an HS256 JWT with exactly these claims (tests and local tooling). */
export function signHs256 (claims: Record<string, unknown>, secret: string): string {
  return createSigner({ key: secret, algorithm: 'HS256', noTimestamp: true })(claims)
}
