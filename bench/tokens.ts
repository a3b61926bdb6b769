/** The bench's JWT settings: the gateway verifies what the load generator signs. */
import { createSigner } from 'fast-jwt'

export const BENCH_SECRET = 'gatehouse-bench-secret-at-least-32-bytes-long'
export const BENCH_ISSUER = 'https://auth.bench'
export const BENCH_AUDIENCE = 'game'

const sign = createSigner({ key: BENCH_SECRET, algorithm: 'HS256' })

/** A valid HS256 token for `user`, valid for two hours. */
export function signToken (user: string): string {
  const now = Math.floor(Date.now() / 1000)
  return sign({ sub: user, iss: BENCH_ISSUER, aud: BENCH_AUDIENCE, iat: now, exp: now + 7200 })
}
