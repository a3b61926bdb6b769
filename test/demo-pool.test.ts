/**
 * The demo's pool variant (issue 12): the Connect Four service as 3
 * processes behind one pooled `/game/:matchId` endpoint, sharing a directory
 * of match state. The instance holding a match is SIGKILLed mid-game: the
 * players stay connected, the match is re-homed, the board is intact and
 * the game goes on.
 */
import t from 'tap'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { startDemo, type RunningDemo } from '../examples/demo/start-demo.js'
import type { GameState } from '../examples/game/messages.js'
import { connect, refusal, type TestClient } from './helpers/client.js'
import { tokenFor } from './helpers/tokens.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
/** The failover waits the config's failoverMs (3 s); the rest is room for a loaded machine. */
const FAILOVER_WAIT_MS = 30000

t.setTimeout(180000)

async function pooledDemo (t: { teardown (fn: () => unknown): void }): Promise<{ demo: RunningDemo, logs: string[] }> {
  const logs: string[] = []
  const logStream = new Writable({
    write (chunk: Buffer, _encoding, done) {
      logs.push(...chunk.toString().split('\n').filter(Boolean))
      done()
    }
  })
  const demo = await startDemo({ configFile: join(ROOT, 'examples/demo/gateway.pool.json'), ephemeralPorts: true, logStream, env: {} })
  t.teardown(() => demo.close())
  return { demo, logs }
}

async function demoToken (demo: RunningDemo, name: string): Promise<string> {
  const res = await fetch(`${demo.url}demo/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name }) })
  return (await res.json() as { token: string }).token
}

/** The next frame of `type` matching `match`, counting only frames that arrive from now on (arm it before the action). */
function next<T = GameState> (client: TestClient, type: string, match: (m: T) => boolean = () => true, timeoutMs = 15000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.ws.off('message', onMessage)
      reject(new Error(`no "${type}" frame within ${timeoutMs} ms; last frames: ${client.messages.all.slice(-3).join(' ')}`))
    }, timeoutMs)
    const onMessage = (data: Buffer): void => {
      let value: { type?: unknown } | undefined
      try {
        value = JSON.parse(data.toString()) as { type?: unknown }
      } catch {
        return
      }
      if (value?.type !== type || !match(value as T)) return
      clearTimeout(timer)
      client.ws.off('message', onMessage)
      resolve(value as T)
    }
    client.ws.on('message', onMessage)
  })
}

const discs = (s: GameState): number => s.cells.flat().filter((c) => c !== null).length

/** Plays `column` as `mover`; resolves with the state both players then see. */
async function move (mover: TestClient, players: TestClient[], column: number, expectedDiscs: number): Promise<GameState[]> {
  const seen = players.map((p) => next(p, 'state', (s) => discs(s) === expectedDiscs))
  mover.ws.send(JSON.stringify({ type: 'move', column, at: expectedDiscs - 1 }))
  return await Promise.all(seen)
}

/** Each pool member's gauge `gatehouse_pool_member_keys` for the game endpoint, and the re-homed counter. */
async function poolMetrics (demo: RunningDemo): Promise<{ keys: Map<string, number>, rehomed: number }> {
  const text = await (await fetch(`${demo.url}metrics`)).text()
  const keys = new Map<string, number>()
  let rehomed = 0
  for (const line of text.split('\n')) {
    if (!line.includes('endpoint="game"')) continue
    const member = /member="([^"]+)"/.exec(line)?.[1]
    const value = Number(line.split(' ').pop())
    if (line.startsWith('gatehouse_pool_member_keys{') && member) keys.set(member, value)
    if (line.startsWith('gatehouse_pool_rehomed_clients_total{')) rehomed += value
  }
  return { keys, rehomed }
}

t.test('a match survives the death of its instance: players stay, the board is intact, the game goes on', async (t) => {
  const { demo } = await pooledDemo(t)
  t.equal(demo.gameInstances.length, 3, 'the pooled game endpoint runs 3 instances')
  t.equal(new Set(demo.gameInstances.map((i) => i.process.pid)).size, 3, 'each in its own process')
  const base = demo.url.replace(/^http/, 'ws')

  const alice = await connect(`${base}game/m1`, { token: await demoToken(demo, 'alice') })
  const aliceSeated = next(alice, 'state', (s) => s.status === 'playing')
  const bob = await connect(`${base}game/m1`, { token: await demoToken(demo, 'bob') })
  const bobSeated = next(bob, 'state', (s) => s.status === 'playing')
  t.equal((await aliceSeated).you, 'red', 'alice, first in, plays red')
  t.equal((await bobSeated).you, 'yellow', 'bob plays yellow')

  await move(alice, [alice, bob], 3, 1)
  await move(bob, [alice, bob], 3, 2)
  const [beforeKill] = await move(alice, [alice, bob], 4, 3)
  t.equal(beforeKill.turn, 'yellow', 'three moves in, it is yellow\'s turn')

  const { keys } = await poolMetrics(demo)
  const holders = [...keys].filter(([, n]) => n > 0).map(([id]) => id)
  t.equal(holders.length, 1, `one instance holds the match (keys per member: ${JSON.stringify([...keys])})`)
  const holder = demo.gameInstances.find((i) => i.id === holders[0])
  if (!holder) throw new Error(`no instance named ${holders[0]}`)
  t.ok(readdirSync(demo.matchStoreDir as string).some((f) => f.endsWith('.json')), 'the match is in the shared store')

  const aliceBack = next(alice, 'state', () => true, FAILOVER_WAIT_MS)
  const bobBack = next(bob, 'state', (s) => s.away.length === 0, FAILOVER_WAIT_MS)
  const died = new Promise((resolve) => holder.process.once('exit', (_code, signal) => resolve(signal)))
  holder.process.kill('SIGKILL')
  t.equal(await died, 'SIGKILL', `the instance holding the match (${holder.id}) is killed`)

  // the heir gets an `open` for each player, loads the match from the store and shows it to them
  const [aliceState, bobState] = await Promise.all([aliceBack, bobBack])
  t.same(aliceState.cells, beforeKill.cells, 'alice sees the board as it was before the kill')
  t.same(bobState.cells, beforeKill.cells, 'bob sees the board as it was before the kill')
  t.equal(bobState.turn, 'yellow', 'and it is still bob\'s turn')
  t.same(bobState.players, { red: 'alice', yellow: 'bob' }, 'both keep their seats')
  t.equal(alice.ws.readyState, alice.ws.OPEN, 'alice stayed connected')
  t.equal(bob.ws.readyState, bob.ws.OPEN, 'bob stayed connected')

  const after = await poolMetrics(demo)
  t.equal(after.rehomed, 2, 'the gateway counts both players re-homed')
  const newHolders = [...after.keys].filter(([, n]) => n > 0).map(([id]) => id)
  t.equal(newHolders.length, 1, 'one instance holds the match after the failover')
  t.not(newHolders[0], holder.id, 'and it is another one')

  const [afterMove] = await move(bob, [alice, bob], 4, 4)
  t.equal(afterMove.cells[4][4], 'yellow', 'bob\'s next move lands on the intact board')
  t.equal(afterMove.cells[5][4], 'red', 'on top of alice\'s disc from before the kill')
  const refused = next<{ message: string }>(bob, 'error')
  bob.ws.send(JSON.stringify({ type: 'move', column: 0, at: 4 }))
  t.equal((await refused).message, 'not your turn', 'turn order survived the failover')
  const stale = next(bob, 'state', (s) => discs(s) === 4)
  bob.ws.send(JSON.stringify({ type: 'move', column: 0, at: 2 }))
  t.equal(discs(await stale), 4, 'a move for an earlier board (as a replayed one is) gets the board back and is not taken')
  const [won] = await Promise.all([next(alice, 'state', (s) => s.status === 'over', FAILOVER_WAIT_MS), (async () => {
    for (const [mover, column, at] of [[alice, 2, 4], [bob, 0, 5], [alice, 1, 6]] as const) {
      mover.ws.send(JSON.stringify({ type: 'move', column, at }))
      await next(alice, 'state', (s) => s.turn !== (mover === alice ? 'red' : 'yellow') || s.status === 'over')
    }
  })()])
  t.match(won.result, { winner: 'red', reason: 'four' }, 'the game plays on to its end: alice\'s four in the bottom row')
  t.equal(alice.ws.readyState, alice.ws.OPEN, 'alice is still connected at the end')
})

t.test('bad input to the pooled game: malformed frames, a match with no opponent, a third player, hostile match ids, bad tokens', async (t) => {
  const { demo } = await pooledDemo(t)
  const base = demo.url.replace(/^http/, 'ws')

  const dave = await connect(`${base}game/nobody-else`, { token: await demoToken(demo, 'dave') })
  const waiting = next(dave, 'state', (s) => s.status === 'waiting')
  t.equal((await waiting).players.yellow, null, 'a match nobody else joined is waiting for an opponent')
  const notYet = next<{ message: string }>(dave, 'error')
  dave.ws.send(JSON.stringify({ type: 'move', column: 3 }))
  t.equal((await notYet).message, 'waiting for an opponent', 'a move in a match with no opponent is refused')
  const malformed = next<{ message: string }>(dave, 'error')
  dave.ws.send('{"type": "move", "column": ')
  t.match((await malformed).message, /^unknown request/, 'a malformed frame gets an error, not a crash')
  const notBegun = next<{ message: string }>(dave, 'error')
  dave.ws.send(JSON.stringify({ type: 'resign', extra: [1, 2, 3] }))
  t.equal((await notBegun).message, 'nothing to resign', 'resigning a match not yet begun is refused')

  const alice = await connect(`${base}game/m2`, { token: await demoToken(demo, 'alice') })
  const bob = await connect(`${base}game/m2`, { token: await demoToken(demo, 'bob') })
  await next(bob, 'state', (s) => s.status === 'playing')
  const carol = await connect(`${base}game/m2`, { token: await demoToken(demo, 'carol') })
  t.same(await carol.closed, { code: 4403, reason: 'this match already has two players' }, 'a third player of a match is closed with 4403')
  const badAt = next<{ message: string }>(alice, 'error')
  alice.ws.send(JSON.stringify({ type: 'move', column: 1, at: 'zero' }))
  t.equal((await badAt).message, 'at must be the number of discs on the board you moved on', 'a move whose board count is not a number is refused')
  const outOfRange = next<{ message: string }>(alice, 'error')
  alice.ws.send(JSON.stringify({ type: 'move', column: 99 }))
  t.equal((await outOfRange).message, 'column must be an integer from 0 to 6', 'a column off the board is refused')

  // a match id is the client's choice: it names a stored file only through a hash
  const sneaky = await connect(`${base}game/${encodeURIComponent('../../escape')}`, { token: await demoToken(demo, 'erin') })
  await next(sneaky, 'state', (s) => s.status === 'waiting')
  const files = readdirSync(demo.matchStoreDir as string)
  t.ok(files.length > 0 && files.every((f) => /^[0-9a-f]{64}\.json$/.test(f)), `every stored match is a hashed file name in the store directory (${files.join(', ')})`)

  const forged = await refusal(`${base}game/m2`, { token: tokenFor('mallory') })
  t.equal(forged.status, 401, 'a token the demo did not sign is refused with 401')
  const none = await refusal(`${base}game/m2`)
  t.equal(none.status, 401, 'no token at all is refused with 401')
  t.equal(alice.ws.readyState, alice.ws.OPEN, 'the players of the match are unaffected')
})
