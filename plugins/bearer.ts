/** The `bearer()` authenticate helper: the token from where clients send it, handed to the app's check. */
import type { FastifyRequest } from 'fastify'
import { extractBearerToken } from '../lib/bearer-token.js'
import type { AuthResult } from '../lib/node/wsc-node.js'
import type { Authenticate } from './websocket.js'

/** What a token stands for: the user id, or the user with rooms to join at once; nothing (or false) refuses with 401. */
export type VerifiedToken = AuthResult | string | null | undefined | false

/** Checks a bearer token (a JWT, a session id…); may throw `errors.ForbiddenError` for 403. */
export type VerifyToken = (token: string, request: FastifyRequest) => VerifiedToken | Promise<VerifiedToken>

/**
 * An `authenticate` hook that finds the bearer token where clients put it: `Authorization: Bearer
 * <token>`, the `wsc.bearer.<token>` subprotocol (the browser client: browsers cannot set headers) or
 * `?token=`, and hands it to `verify`. No token, or `verify` answering nothing, refuses with 401.
 *
 * @example app.register(wsc, { authenticate: bearer(async (token) => (await sessions.get(token))?.userId) })
 */
export function bearer (verify: VerifyToken): Authenticate {
  return async (request) => {
    const token = extractBearerToken({
      authorization: request.headers.authorization,
      protocol: request.headers['sec-websocket-protocol'],
      url: request.url
    })
    if (token === undefined) return null
    const verified = await verify(token, request)
    if (typeof verified === 'string') return verified === '' ? null : { userId: verified }
    return verified
  }
}
