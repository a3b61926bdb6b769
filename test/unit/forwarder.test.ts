/**
 * The forwarder's loss accounting (src/cluster/forwarder.ts): a gap in a
 * sender's running count is counted as dropped, and the counts of nodes that
 * left the cluster are forgotten, so nodes restarting under new ids do not
 * grow them for ever.
 */
import t from 'tap'
import { pino } from 'pino'
import { GatewayMetrics } from '../../src/metrics.js'
import { Forwarder } from '../../src/cluster/forwarder.js'
import type { ActionsMessage } from '../../src/cluster/messages.js'
import type { PresenceStore } from '../../src/cluster/transport.js'
import { metricValue } from '../helpers/gateway.js'

const CHANNEL = 'node:me'

function receiver () {
  const metrics = new GatewayMetrics()
  const forwarder = new Forwarder({
    nodeId: 'me',
    presenceTtlMs: 1000,
    presence: {} as PresenceStore,
    post: () => {},
    isUp: () => true,
    upSince: () => 0,
    metrics,
    log: pino({ level: 'silent' })
  })
  const dropped = async (): Promise<number> => metricValue(await metrics.registry.metrics(), 'gatehouse_dropped_actions_total', { reason: 'broker_unavailable' })
  return { forwarder, dropped }
}

/** The `n`-th delivery `from` published on this node's channel: one send to one user. */
const delivery = (from: string, n: number): ActionsMessage =>
  ({ t: 'actions', e: 'lobby', a: [{ action: 'send', user: 'u', data: n }], from, n, ep: `epoch-${from}` })

t.test('a gap in a sender\'s count is counted as dropped, once per missing delivery', async (t) => {
  const { forwarder, dropped } = receiver()
  forwarder.received(CHANNEL, delivery('a', 1))
  forwarder.received(CHANNEL, delivery('a', 2))
  t.equal(await dropped(), 0, 'no gap, nothing dropped')
  forwarder.received(CHANNEL, delivery('a', 5))
  t.equal(await dropped(), 2, 'deliveries 3 and 4 never arrived')
  forwarder.received(CHANNEL, { ...delivery('a', 1), ep: 'restarted' })
  t.equal(await dropped(), 2, 'a sender that restarted (new epoch) starts a new count')
})

t.test('nodes that left are forgotten; those still in the cluster are not', async (t) => {
  const { forwarder, dropped } = receiver()
  forwarder.received(CHANNEL, delivery('gone', 1))
  forwarder.received(CHANNEL, delivery('stays', 1))
  forwarder.keepOnly(new Set(['stays']))
  forwarder.received(CHANNEL, delivery('stays', 4))
  t.equal(await dropped(), 2, 'the gap of a node still in the cluster is still counted')
  forwarder.received(CHANNEL, delivery('gone', 9))
  t.equal(await dropped(), 2, 'a node forgotten and heard again is a new sender: no gap from a count it no longer keeps')
  forwarder.keepOnly(new Set())
  forwarder.received(CHANNEL, delivery('stays', 5))
  t.equal(await dropped(), 2, 'forgetting everyone leaves no count to compare with')
})

t.test('bad input: a message whose count runs backwards is not a loss', async (t) => {
  const { forwarder, dropped } = receiver()
  forwarder.received(CHANNEL, delivery('a', 10))
  forwarder.received(CHANNEL, delivery('a', 3))
  t.equal(await dropped(), 0, 'a count lower than the last is no gap')
})
