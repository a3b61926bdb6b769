/**
 * Chaos in CI (issue 6): players stream numbered messages through a real
 * gateway with `backend.acks` while the backend is SIGKILLed and restarted,
 * while its link is severed, and while players drop and resume. Afterwards nothing is lost or reordered, and
 * duplicates are only of events that were never acknowledged. No timing is
 * asserted; the pauses between blows are the chaos, not waits for results.
 */
import { EventEmitter } from 'node:events'
import t from 'tap'
import { GatehouseBackend } from '../src/sdk/index.js'
import { startGateway, testConfig } from './helpers/gateway.js'
import { onFreePort } from './helpers/ports.js'
import { allArrived, BackendProcesses, Chaos, chaosSeed, CutProxy, Streamers, tally, until, type Incarnation } from './helpers/chaos.js'
import { BACKEND_TOKEN, captureLogger } from './sdk-fixtures.js'

const PLAYERS = Array.from({ length: 6 }, (_, i) => `player${i}`)
const KILLS = 7
const CUTS = 10
const BLIPS = 12
/** Each test's pauses come from this seed: CHAOS_SEED=<seed> replays them. */
const SEED = chaosSeed()

/** The test's randomness, its seed printed up front (and named in every failure message). */
function chaosFor (t: { comment (message: string): void }): Chaos {
  const chaos = new Chaos(SEED)
  t.comment(`CHAOS_SEED=${SEED}`)
  return chaos
}

/** An in-process SDK backend that records every open, close and numbered message it handles. */
async function recordingBackend (t: Parameters<typeof startGateway>[0], options: { linkGraceMs?: number } = {}) {
  const changed = new EventEmitter<{ line: [] }>()
  const seen: Incarnation = { messages: [], opens: [], closes: [] }
  const backend = new GatehouseBackend({ token: BACKEND_TOKEN, logger: captureLogger(), ...options }, {
    onOpen: (user) => { seen.opens.push(user) },
    onClose: (user, code) => { seen.closes.push(`${user} ${code}`) },
    onMessage: (user, data, { seq }) => {
      seen.messages.push([user, (data as { n: number }).n, seq ?? 0, 0])
      changed.emit('line')
    }
  })
  const { port, url } = await backend.listen()
  t.teardown(() => backend.stop())
  return { backend, seen, changed, port, url }
}

function chaosGateway (t: Parameters<typeof startGateway>[0], backendUrl: string, endpoint: Record<string, unknown> = {}) {
  return startGateway(t, testConfig([{
    name: 'chaos',
    path: '/chaos',
    ...endpoint,
    backend: { url: backendUrl, token: BACKEND_TOKEN, acks: true, minReconnectDelayMs: 20, maxReconnectDelayMs: 100 }
  }], {
    limits: { messagesPerSecond: 100000, burst: 100000 },
    log: { level: 'info' }
  }))
}

t.test(`backend SIGKILLed and restarted ${KILLS} times under streaming players`, async (t) => {
  const chaos = chaosFor(t)
  const { port, backends } = await onFreePort(async (port) => {
    const backends = new BackendProcesses(port, BACKEND_TOKEN)
    t.teardown(() => backends.kill())
    await backends.start()
    return { port, backends }
  })
  const gateway = await chaosGateway(t, `ws://127.0.0.1:${port}`)
  await gateway.logged(/backend link up/)
  const players = await Streamers.start(gateway.url('/chaos'), PLAYERS)
  t.teardown(() => players.close())

  for (let kill = 0; kill < KILLS; kill++) {
    // each kill lands on a link that is up and carrying the stream
    const current = backends.incarnations.at(-1) as Incarnation
    await until(backends, () => current.messages.length > 0, 15000, `incarnation ${kill + 1} to handle messages`)
    await chaos.pause(1000, 2000)
    await backends.kill()
    await backends.start()
    await gateway.logged(/backend link up/, 15000)
  }
  players.stop()
  await until(backends, () => allArrived(players.sent, backends.incarnations), 30000, 'every message to reach a backend')
  const figures = tally(players.sent, backends.incarnations)
  t.comment(`kills ${KILLS}: ${JSON.stringify(figures)}`)
  t.equal(await gateway.metric('gatehouse_link_reconnects_total'), KILLS, chaos.say('each kill cost the link once, and it came back each time'))
  t.equal(figures.lost, 0, chaos.say('no message lost'))
  t.equal(figures.reordered, 0, chaos.say('none reordered within an incarnation'))
  t.equal(figures.duplicatesOfAcked, 0, chaos.say('no acknowledged message delivered again'))
  t.equal(figures.seqMismatches, 0, chaos.say('a replay keeps its original seq'))
  const last = backends.incarnations.at(-1) as Incarnation
  t.same([...new Set(last.opens)].sort(), [...PLAYERS].sort(), chaos.say('the last incarnation knows every player'))
  t.same(last.closes, [], chaos.say('and closed none'))
})

t.test(`gateway↔backend link severed ${CUTS} times under streaming players`, async (t) => {
  const chaos = chaosFor(t)
  const { backend, seen, changed, port } = await recordingBackend(t, { linkGraceMs: 60000 })
  const proxy = new CutProxy(port)
  const proxyPort = await proxy.listen()
  t.teardown(() => proxy.close())
  const gateway = await chaosGateway(t, `ws://127.0.0.1:${proxyPort}`)
  await gateway.logged(/backend link up/)
  const players = await Streamers.start(gateway.url('/chaos'), PLAYERS)
  t.teardown(() => players.close())
  await until(changed, () => proxy.acksSeen > 0, 10000, 'the first ack through the proxy')

  for (let cut = 0; cut < CUTS; cut++) {
    await chaos.pause(200, 600)
    proxy.cut()
    await gateway.logged(/backend link up/, 15000)
    // the next cut severs a link that acks again, so none lands on a link still coming up
    const acks = proxy.acksSeen
    await until(changed, () => proxy.acksSeen > acks, 15000, `an ack after cut ${cut + 1}`)
  }
  players.stop()
  await until(changed, () => allArrived(players.sent, [seen]), 30000, 'every message to reach the backend')

  const figures = tally(players.sent, [seen])
  t.comment(`cuts ${proxy.cuts}: ${JSON.stringify(figures)}, replays skipped ${backend.stats.duplicatesSkipped}`)
  t.equal(await gateway.metric('gatehouse_link_reconnects_total'), CUTS, chaos.say('each cut severed a live link, and the gateway came back each time'))
  t.equal(figures.lost, 0, chaos.say('no message lost'))
  t.equal(figures.reordered, 0, chaos.say('none reordered'))
  t.equal(figures.duplicates, 0, chaos.say('a backend that kept running handles nothing twice'))
  t.same(seen.opens.sort(), [...PLAYERS].sort(), chaos.say('each player opened once'))
  t.same(seen.closes, [], chaos.say('and nobody was closed by a blip'))
  t.equal(backend.stats.badFrames, 0, chaos.say('the backend got no frame it could not read'))
})

t.test(`players dropping ${BLIPS} times and resuming within resumeGraceMs: the backend notices nothing`, async (t) => {
  const chaos = chaosFor(t)
  const { seen, changed, url } = await recordingBackend(t)
  const gateway = await chaosGateway(t, url, { resumeGraceMs: 10000 })
  await gateway.logged(/backend link up/)
  const players = await Streamers.start(gateway.url('/chaos'), PLAYERS)
  t.teardown(() => players.close())

  for (let blip = 0; blip < BLIPS; blip++) {
    await chaos.pause(100, 300)
    const user = PLAYERS[blip % PLAYERS.length]
    await players.blip(user, {
      delivered: async () => await until(changed, () => seen.messages.filter((m) => m[0] === user).length >= (players.sent.get(user) ?? 0), 10000, `${user}'s messages before the drop`),
      held: async () => { await gateway.logged(/holding its session for a resume/) }
    })
  }
  players.stop()
  await until(changed, () => allArrived(players.sent, [seen]), 30000, 'every message to reach the backend')

  const figures = tally(players.sent, [seen])
  t.comment(`blips ${BLIPS}: ${JSON.stringify(figures)}, resumes ${await gateway.metric('gatehouse_resumes_total')}`)
  t.equal(figures.lost, 0, chaos.say('no message lost'))
  t.equal(figures.reordered, 0, chaos.say('none reordered'))
  t.equal(figures.duplicates, 0, chaos.say('none twice'))
  t.equal(await gateway.metric('gatehouse_resumes_total'), BLIPS, chaos.say('every drop was resumed'))
  t.same(seen.opens.sort(), [...PLAYERS].sort(), chaos.say('the backend saw each player open once'))
  t.same(seen.closes, [], chaos.say('and no close'))
})
