/**
 * The raw link's tests' shared setup (protocol/PROTOCOL.md §2a): a `raw`
 * endpoint, players whose frames are kept as they came, and two cluster
 * nodes with alice on one and bob on the other, both announced to the
 * hand-driven backend.
 */
import { WebSocket } from 'ws'
import { startNode, type GatewayNode } from './cluster.js'
import type { EndpointSpec } from './gateway.js'
import type { HandBackend } from './records.js'
import { redisFor } from './redis.js'
import { tokenFor } from './tokens.js'
import { Inbox } from './waiter.js'

/** The `game` endpoint on a raw link to `url`; `backend` and `endpoint` add to (or override) its fields. */
export function rawEndpoint (url: string, backend: Record<string, unknown> = {}, endpoint: Record<string, unknown> = {}): EndpointSpec {
  return { name: 'game', path: '/game/:matchId', ...endpoint, backend: { url, encoding: 'raw', minReconnectDelayMs: 20, maxReconnectDelayMs: 200, ...backend } }
}

/** A player whose frames are kept as they came: bytes, and whether the frame was binary (from before its open: a resume's kept frames come at once). */
export interface Player {
  ws: WebSocket
  frames: Inbox<{ bytes: Buffer, binary: boolean }>
  closed: Promise<{ code: number, reason: string }>
}

export async function player (url: string, user: string): Promise<Player> {
  const ws = new WebSocket(url, { headers: { authorization: `Bearer ${tokenFor(user)}` } })
  const frames = new Inbox<{ bytes: Buffer, binary: boolean }>()
  ws.on('message', (data: Buffer, binary) => frames.push({ bytes: Buffer.from(data), binary }))
  const closed = new Promise<{ code: number, reason: string }>((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })))
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('error', reject)
  })
  ws.on('error', () => {})
  return { ws, frames, closed }
}

/** Two nodes of one cluster serving `endpoint` (linked to `backend`), alice on node-a and bob on node-b in match m1, both opens seen by the backend. */
export async function aliceAndBobOnTwoNodes (t: { teardown (fn: () => unknown): void }, backend: HandBackend, endpoint: EndpointSpec): Promise<{ a: GatewayNode, b: GatewayNode, alice: Player, bob: Player }> {
  const redis = await redisFor(t)
  const [a, b] = await Promise.all([startNode(t, 'node-a', redis.url, [endpoint]), startNode(t, 'node-b', redis.url, [endpoint])])
  await backend.next('sync')
  await backend.next('sync')
  const alice = await player(a.url('/game/m1'), 'alice')
  const bob = await player(b.url('/game/m1'), 'bob')
  await backend.next('open', 'alice')
  await backend.next('open', 'bob')
  return { a, b, alice, bob }
}
