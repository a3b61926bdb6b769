/**
 * A pool member for bench/pools.ts: the backend SDK with `acks: 'auto'`,
 * echoing every message to its sender, and noting when each user's latest
 * `open` reached it (wall clock, ms), so the bench can tell from the
 * backends' side when a failover's players were all re-opened.
 */
import { performance } from 'node:perf_hooks'
import { pino } from 'pino'
import { GatehouseBackend } from '../../src/sdk/index.js'
import { serveIpc } from '../ipc.js'
import { serverHandlers } from './common.js'

const now = (): number => performance.timeOrigin + performance.now()
const backend = new GatehouseBackend({ allowUnauthenticated: true, logger: pino({ level: 'silent' }), acks: 'auto', linkGraceMs: 600000 })
const counts = { links: 0, opens: 0, closes: 0, messages: 0 }
/** Each connected user, and when their latest `open` came. */
const openedAt = new Map<string, number>()

backend.handle({
  onOpen (user) {
    counts.opens++
    openedAt.set(user, now())
  },
  onMessage (user, data) {
    counts.messages++
    backend.send(user, data)
  },
  onClose (user) {
    counts.closes++
    openedAt.delete(user)
  }
})
backend.on('link', () => { counts.links++ })
const { port } = await backend.listen({ port: 0, host: '127.0.0.1' })

serveIpc({
  ...serverHandlers(async () => { await backend.stop() }),
  stats: () => ({ ...counts, users: openedAt.size, ...backend.stats }),
  users: () => [...openedAt.keys()],
  /** Users whose latest `open` came after `since` (wall clock ms), with that time. */
  opensSince: ({ since }: { since: number }) => [...openedAt].filter(([, at]) => at > since)
}, { port })
