/**
 * The check a backend makes on each gateway link's upgrade request
 * (PROTOCOL.md §1): `Authorization: Bearer <token>`, compared in constant time.
 */
import { createHash, timingSafeEqual } from 'node:crypto'

/** Hashing first gives both sides the same length, so the comparison leaks neither content nor length. */
const digest = (value: string): Buffer => createHash('sha256').update(value).digest()

export function bearerMatches (authorization: string | undefined, expected: string): boolean {
  const match = /^Bearer[ \t]+(\S+)\s*$/i.exec(authorization ?? '')
  if (!match) return false
  return timingSafeEqual(digest(match[1]), digest(expected))
}
