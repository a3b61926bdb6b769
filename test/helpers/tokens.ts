/** Test tokens: good ones, and every kind of bad one the gateway must refuse. */
import { createSigner } from 'fast-jwt'
import { generateKeyPairSync } from 'node:crypto'

export const SECRET = 'test-secret-that-is-long-enough-for-hs256'
export const ISSUER = 'https://auth.test'
export const AUDIENCE = 'game'

const sign = createSigner({ key: SECRET, algorithm: 'HS256' })

/** A valid HS256 token for `user` (iss/aud set, 1 h expiry), with extra claims merged in. */
export function tokenFor (user: string, claims: Record<string, unknown> = {}): string {
  const now = Math.floor(Date.now() / 1000)
  return sign({ sub: user, iss: ISSUER, aud: AUDIENCE, iat: now, exp: now + 3600, ...claims })
}

export function signWith (key: string | Buffer, algorithm: string, payload: Record<string, unknown>): string {
  return createSigner({ key, algorithm: algorithm as 'HS256' })(payload)
}

const b64url = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')

/** `alg: none`: a header and payload, and no signature. */
export function unsignedToken (user: string): string {
  const now = Math.floor(Date.now() / 1000)
  return `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ sub: user, iss: ISSUER, aud: AUDIENCE, exp: now + 3600 })}.`
}

export function rsaKeys (): { privateKey: string, publicKey: string } {
  return generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' }
  })
}
