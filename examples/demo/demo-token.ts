/**
 * Short-lived demo tokens: HS256, signed with the gateway's own secret and
 * carrying its issuer and audience, so the gateway accepts them like any
 * other. Demo only: a real deployment gets its tokens from its auth service.
 */
import { createSigner } from 'fast-jwt'
import type { GatewayConfig } from '../../src/index.js'

export interface DemoTokenIssuer {
  /** Lifetime of a token, in seconds. */
  readonly ttlSec: number
  issue (user: string): { token: string, expiresAt: number }
}

/** Names a player may pick: they become the user id and travel in URLs and logs. */
export const PLAYER_NAME = /^[A-Za-z0-9_-]{1,20}$/

/** Throws at start-up when the config cannot take demo tokens. */
/** A minute by default: the page's client refreshes them on the live socket (docs/client.md, "Token refresh"). */
export function demoTokenIssuer (auth: Readonly<GatewayConfig['auth']>, ttlSec = 60): DemoTokenIssuer {
  if (auth.secret === undefined || !auth.algorithms.includes('HS256')) {
    throw new Error('the demo signs HS256 tokens: auth.secret must be set and auth.algorithms must include HS256')
  }
  if (auth.userClaim.includes('.')) throw new Error(`the demo puts the player name in a top-level claim; auth.userClaim is "${auth.userClaim}"`)
  const first = (value: string | string[] | undefined): string | undefined => (Array.isArray(value) ? value[0] : value)
  const sign = createSigner({
    key: auth.secret,
    algorithm: 'HS256',
    expiresIn: ttlSec * 1000,
    ...(auth.issuer === undefined ? {} : { iss: first(auth.issuer) }),
    ...(auth.audience === undefined ? {} : { aud: first(auth.audience) })
  })
  return {
    ttlSec,
    issue (user) {
      return { token: sign({ [auth.userClaim]: user }), expiresAt: Date.now() + ttlSec * 1000 }
    }
  }
}
