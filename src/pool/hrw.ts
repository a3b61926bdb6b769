/**
 * Weighted rendezvous (highest random weight) hashing: every candidate
 * scores a key, the highest score wins. Scores of one candidate do not
 * depend on the others, so adding or removing a member moves only the keys
 * it wins or held, and two gateways with the same members agree without
 * talking. Weights use the logarithmic method (Schindelhauer and Schomaker,
 * "Weighted distributed hash tables", 2005): score = -weight / ln(h), where
 * h is the hash of (member, key) mapped into (0, 1); a member of weight 2
 * wins twice as many keys as one of weight 1.
 */
import { createHash } from 'node:crypto'

export interface Candidate {
  id: string
  weight: number
}

/** 2^48: the hash bits used, well within a double's 53-bit mantissa. */
const SPAN = 2 ** 48

/** The score of `candidate` for `key`; pure. */
export function score (key: string, candidate: Candidate): number {
  const digest = createHash('sha256').update(candidate.id).update('\0').update(key).digest()
  // (n + 0.5) / 2^48 is never 0 nor 1, so the logarithm is finite and negative
  const h = (digest.readUIntBE(0, 6) + 0.5) / SPAN
  return -candidate.weight / Math.log(h)
}

/** The candidate with the highest score for `key` (ties, which need equal hashes, go to the smaller id); undefined when there is none. */
export function pick<T extends Candidate> (key: string, candidates: readonly T[]): T | undefined {
  // one candidate wins whatever its score: no hash for a pool of one (every `backend.url`)
  if (candidates.length < 2) return candidates[0]
  let best: T | undefined
  let bestScore = -Infinity
  for (const candidate of candidates) {
    const s = score(key, candidate)
    if (s > bestScore || (s === bestScore && best !== undefined && candidate.id < best.id)) {
      best = candidate
      bestScore = s
    }
  }
  return best
}
