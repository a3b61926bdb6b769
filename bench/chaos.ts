/**
 * The long chaos run (issue 6): the CI chaos test's backend-kill scenario for
 * as long as you like. Players stream numbered messages through a real
 * gateway with `backend.acks` while the backend process is SIGKILLed and
 * restarted every 1-3 s; at the end it prints the tally and exits 1 if a
 * message was lost or reordered, or an acknowledged one came again.
 *
 *   npm run chaos -- --seconds 60 --players 8
 *
 * The pauses come from a seed, printed first and in the tally: CHAOS_SEED=<seed> replays them.
 */
import { parseArgs } from 'node:util'
import { startGateway, testConfig } from '../test/helpers/gateway.js'
import { allArrived, BackendProcesses, Chaos, chaosSeed, Streamers, tally, until } from '../test/helpers/chaos.js'
import { onFreePort } from '../test/helpers/ports.js'

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '60' }, players: { type: 'string', default: '8' } } })
const seconds = Number(values.seconds)
const players = Array.from({ length: Number(values.players) }, (_, i) => `player${i}`)
const token = 'chaos-backend-token-0123456789abcdef'

const teardowns: Array<() => unknown> = []
const chaos = new Chaos(chaosSeed())
console.error(`CHAOS_SEED=${chaos.seed}`)
const { port, backends } = await onFreePort(async (port) => {
  const backends = new BackendProcesses(port, token)
  teardowns.push(() => backends.kill())
  await backends.start()
  return { port, backends }
})
const gateway = await startGateway({ teardown: (fn) => teardowns.push(fn) }, testConfig([{
  name: 'chaos',
  path: '/chaos',
  backend: { url: `ws://127.0.0.1:${port}`, token, acks: true, minReconnectDelayMs: 20, maxReconnectDelayMs: 100 }
}], { limits: { messagesPerSecond: 100000, burst: 100000 }, log: { level: 'warn' } }))
await gateway.logged(/backend link up/).catch(() => {})
const streamers = await Streamers.start(gateway.url('/chaos'), players)

let kills = 0
const endAt = Date.now() + seconds * 1000
while (Date.now() < endAt) {
  await chaos.pause(1000, 3000)
  await backends.kill()
  kills++
  await backends.start()
}
streamers.stop()
await until(backends, () => allArrived(streamers.sent, backends.incarnations), 60000, 'every message to reach a backend')

const figures = { seed: chaos.seed, seconds, players: players.length, kills, ...tally(streamers.sent, backends.incarnations) }
console.log(JSON.stringify(figures, null, 2))
await streamers.close()
for (const fn of teardowns.reverse()) await fn()
process.exit(figures.lost === 0 && figures.reordered === 0 && figures.duplicatesOfAcked === 0 && figures.seqMismatches === 0 ? 0 : 1)
