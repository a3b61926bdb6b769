/** The example lobby and Connect Four services: their rules, and played over a real gateway. */
import tap from 'tap'
import { Board } from '../examples/game/connect-four.js'
import { Match } from '../examples/game/match.js'
import { startGame } from '../examples/game/index.js'
import { startLobby } from '../examples/lobby/index.js'
import type { GameState } from '../examples/game/messages.js'
import { startGateway, testConfig } from './helpers/gateway.js'
import { connect, type TestClient } from './helpers/client.js'
import { tokenFor } from './helpers/tokens.js'
import { BACKEND_TOKEN, captureLogger, nextOfType, synced } from './sdk-fixtures.js'
import { Inbox } from './helpers/waiter.js'

type Test = { teardown (fn: () => unknown): void }

/** A legal game that fills the board with no four in a row (found by a search, checked below). */
const DRAWN_GAME = [5, 4, 5, 0, 6, 2, 4, 5, 5, 0, 4, 1, 1, 0, 4, 5, 6, 5, 3, 1, 1, 2, 2, 6, 2, 6, 6, 3, 6, 2, 0, 3, 0, 3, 3, 4, 3, 1, 4, 2, 1, 0]

tap.test('Connect Four rules', async (t) => {
  const board = new Board()
  for (const bad of [-1, 7, 2.5, '3', null, undefined, Number.NaN]) {
    t.same(board.drop(bad, 'red'), { ok: false, problem: 'column must be an integer from 0 to 6' }, `column ${String(bad)} is refused`)
  }
  for (let i = 0; i < 6; i++) t.same(board.drop(0, i % 2 === 0 ? 'red' : 'yellow'), { ok: true, row: 5 - i }, `disc ${i + 1} in column 0 lands on row ${5 - i}`)
  t.same(board.drop(0, 'red'), { ok: false, problem: 'that column is full' }, 'a full column is refused')
  t.equal(board.lineThrough(0, 0), undefined, 'alternating discs make no line')

  const wins: Array<[string, Array<[number, number]>]> = [
    ['horizontal', [[5, 1], [5, 2], [5, 3], [5, 4]]],
    ['vertical', [[5, 6], [4, 6], [3, 6], [2, 6]]],
    ['diagonal', [[5, 0], [4, 1], [3, 2], [2, 3]]],
    ['anti-diagonal', [[2, 3], [3, 4], [4, 5], [5, 6]]]
  ]
  for (const [name, cells] of wins) {
    const b = new Board()
    for (const [r, c] of cells) b.cells[r][c] = 'yellow'
    const [lastRow, lastColumn] = cells[1]
    t.same(b.lineThrough(lastRow, lastColumn), [...cells].sort((a, z) => a[0] - z[0] || a[1] - z[1]), `${name} four found from a middle disc`)
  }

  const match = new Match('m')
  t.same(match.move('alice', 0), { ok: false, problem: 'you are not playing in this match' }, 'a player not seated may not move')
  match.seat('alice')
  t.same(match.move('alice', 0), { ok: false, problem: 'waiting for an opponent' }, 'no move before the opponent arrives')
  match.seat('bob')
  t.equal(match.seat('carol'), undefined, 'a third player gets no seat')
  t.equal(match.seat('alice'), 'red', 'seating again keeps the seat')
  DRAWN_GAME.forEach((column, i) => {
    const outcome = match.move(i % 2 === 0 ? 'alice' : 'bob', column)
    if (!outcome.ok) t.fail(`move ${i} refused: ${outcome.problem}`)
  })
  t.equal(match.status, 'over', 'the drawn game is over')
  t.same(match.result, { winner: null, reason: 'draw' }, 'a full board with no four is a draw')
  t.notOk(match.concede('alice', 'resign'), 'nothing to resign once over')
})

async function lobbySetup (t: Test) {
  const lobby = await startLobby({ token: BACKEND_TOKEN, logger: captureLogger() })
  t.teardown(() => lobby.stop())
  const linked = synced(lobby.backend)
  const gateway = await startGateway(t, testConfig([{ name: 'lobby', path: '/lobby', backend: { url: lobby.url, token: BACKEND_TOKEN } }]))
  await linked
  const url = gateway.url('/lobby')
  const join = async (user: string): Promise<TestClient> => {
    const client = await connect(url, { token: tokenFor(user) })
    await nextOfType(client.messages, 'welcome')
    return client
  }
  return { lobby, join, url }
}

const error = async (client: TestClient): Promise<string> => (await nextOfType<{ message: string }>(client.messages, 'error')).message

tap.test('lobby: presence, chat, and the requests it refuses', async (t) => {
  const { lobby, join, url } = await lobbySetup(t)
  const alice = await join('alice')
  await nextOfType(alice.messages, 'players')
  alice.ws.send(JSON.stringify({ type: 'chat', text: '  first!  ' }))
  await nextOfType(alice.messages, 'chat')
  const bob = await connect(url, { token: tokenFor('bob') })
  const welcome = await nextOfType<{ you: string, players: string[], history: Array<{ from: string, text: string }> }>(bob.messages, 'welcome')
  t.same([welcome.you, welcome.players], ['bob', ['alice', 'bob']], 'the newcomer is told who it is and who is online')
  t.same(welcome.history.map((l) => `${l.from}: ${l.text}`), ['alice: first!'], 'a newcomer sees recent chat, trimmed')
  t.same((await nextOfType<{ players: string[] }>(alice.messages, 'players', (m) => m.players.length === 2)).players, ['alice', 'bob'], 'alice is told bob arrived')

  bob.ws.send(JSON.stringify({ type: 'chat', text: 'hello alice' }))
  const line = await nextOfType<{ from: string, text: string, at: number }>(alice.messages, 'chat')
  t.same([line.from, line.text, typeof line.at], ['bob', 'hello alice', 'number'], 'the chat line names its sender and carries a timestamp')

  const refused: Array<[unknown, RegExp]> = [
    ['not json at all', /unknown request/],
    [[1, 2], /unknown request/],
    [{ type: 'dance' }, /unknown request/],
    [{ type: 'chat', text: '   ' }, /chat text must be 1-280/],
    [{ type: 'chat', text: 'x'.repeat(281) }, /chat text must be 1-280/],
    [{ type: 'chat', text: 42 }, /chat text must be 1-280/],
    [{ type: 'challenge', to: 'alice' }, /cannot challenge yourself/],
    [{ type: 'challenge', to: 'ghost' }, /not online/],
    [{ type: 'challenge' }, /not online/],
    [{ type: 'accept', from: 'bob' }, /no such challenge/],
    [{ type: 'decline', from: null }, /no such challenge/]
  ]
  for (const [request, expected] of refused) {
    alice.ws.send(typeof request === 'string' ? request : JSON.stringify(request))
    t.match(await error(alice), expected, `refused: ${JSON.stringify(request).slice(0, 40)}`)
  }
  t.same(lobby.lobby.online(), ['alice', 'bob'], 'bad requests change nothing')

  bob.ws.close()
  t.same((await nextOfType<{ players: string[] }>(alice.messages, 'players', (m) => m.players.length === 1)).players, ['alice'], 'alice is told bob left')
})

tap.test('lobby: challenges are declined, accepted into a match, and dropped when a player leaves', async (t) => {
  const { join } = await lobbySetup(t)
  const alice = await join('alice')
  const bob = await join('bob')
  const carol = await join('carol')
  // take alice's presence updates so far, so the next one seen is new
  for (const count of [1, 2, 3]) await nextOfType<{ players: string[] }>(alice.messages, 'players', (m) => m.players.length === count)

  alice.ws.send(JSON.stringify({ type: 'challenge', to: 'bob' }))
  t.equal((await nextOfType<{ to: string }>(alice.messages, 'challenge-sent')).to, 'bob', 'the challenger is told the challenge went out')
  t.equal((await nextOfType<{ from: string }>(bob.messages, 'challenged')).from, 'alice', 'the challenged player is told who challenged')
  bob.ws.send(JSON.stringify({ type: 'decline', from: 'alice' }))
  t.equal((await nextOfType<{ by: string }>(alice.messages, 'declined')).by, 'bob', 'the challenger is told who declined')
  bob.ws.send(JSON.stringify({ type: 'accept', from: 'alice' }))
  t.match(await error(bob), /no such challenge/, 'a declined challenge cannot be accepted')

  alice.ws.send(JSON.stringify({ type: 'challenge', to: 'bob' }))
  await nextOfType(bob.messages, 'challenged')
  carol.ws.send(JSON.stringify({ type: 'accept', from: 'alice' }))
  t.match(await error(carol), /no such challenge/, 'only the challenged player can accept')

  carol.ws.send(JSON.stringify({ type: 'challenge', to: 'alice' }))
  await nextOfType(alice.messages, 'challenged')
  carol.ws.close()
  await nextOfType<{ players: string[] }>(alice.messages, 'players', (m) => !m.players.includes('carol'))
  alice.ws.send(JSON.stringify({ type: 'accept', from: 'carol' }))
  t.match(await error(alice), /no such challenge/, 'a challenge dies with its challenger')

  bob.ws.send(JSON.stringify({ type: 'accept', from: 'alice' }))
  const forAlice = await nextOfType<{ matchId: string, opponent: string }>(alice.messages, 'match')
  const forBob = await nextOfType<{ matchId: string, opponent: string }>(bob.messages, 'match')
  t.equal(forAlice.matchId, forBob.matchId, 'both get the same match id')
  t.match(forAlice.matchId, /^[A-Za-z0-9_-]{12}$/, 'safe in a URL path')
  t.same([forAlice.opponent, forBob.opponent], ['bob', 'alice'], 'each player is told the other is the opponent')
})

type Players = { players: string[], busy: string[] }
type Welcome = Players & { you: string, match?: { matchId: string, opponent: string } }

tap.test('lobby: players in a match are shown busy, cannot be challenged, find their match again, and may ask a rematch', async (t) => {
  const { lobby, join, url } = await lobbySetup(t)
  const alice = await join('alice')
  const bob = await join('bob')
  const carol = await join('carol')
  await nextOfType<Players>(carol.messages, 'players', (m) => m.players.length === 3)
  // carol's challenge to bob is still open when bob goes into a match with alice
  carol.ws.send(JSON.stringify({ type: 'challenge', to: 'bob' }))
  await nextOfType(bob.messages, 'challenged')
  alice.ws.send(JSON.stringify({ type: 'challenge', to: 'bob' }))
  await nextOfType(bob.messages, 'challenged', (m: { from: string }) => m.from === 'alice')
  bob.ws.send(JSON.stringify({ type: 'accept', from: 'alice' }))
  const { matchId } = await nextOfType<{ matchId: string }>(alice.messages, 'match')
  t.match(await error(carol), /bob is in a match now/, 'a player whose challenge the match swallowed is told')
  const busy = await nextOfType<Players>(carol.messages, 'players', (m) => m.busy.length > 0)
  t.same(busy, { type: 'players', players: ['alice', 'bob', 'carol'], busy: ['alice', 'bob'] }, 'everyone is told who is in a game')

  const refused: Array<[TestClient, unknown, RegExp, string]> = [
    [carol, { type: 'challenge', to: 'alice' }, /alice is in a match/, 'a challenge to a player in a match'],
    [alice, { type: 'challenge', to: 'carol' }, /you are in a match/, 'a challenge from a player in a match'],
    [alice, { type: 'rematch', matchId }, /not over yet/, 'a rematch of a match still being played'],
    [carol, { type: 'rematch', matchId }, /did not play in that match/, 'a rematch asked by a non-player'],
    [carol, { type: 'rematch' }, /did not play in that match/, 'a rematch with no match id'],
    [carol, { type: 'rematch', matchId: { $ne: null } }, /did not play in that match/, 'a rematch with a match id that is not a string'],
    [carol, { type: 'accept', from: 'bob' }, /no such challenge/, 'accepting a challenge that was never made']
  ]
  for (const [client, request, expected, what] of refused) {
    client.ws.send(JSON.stringify(request))
    t.match(await error(client), expected, `refused: ${what}`)
  }
  t.same(lobby.lobby.busy(), ['alice', 'bob'], 'refusals change nothing')

  // alice closes the tab and comes back: the lobby sends her to her match
  alice.ws.close()
  await nextOfType<Players>(bob.messages, 'players', (m) => !m.players.includes('alice'))
  t.same(lobby.lobby.busy(), ['alice', 'bob'], 'a player who left the lobby is still in the match')
  const back = await connect(url, { token: tokenFor('alice') })
  const welcome = await nextOfType<Welcome>(back.messages, 'welcome')
  t.same(welcome.match, { matchId, opponent: 'bob' }, 'the returning player is told which match to rejoin')
  t.same(welcome.busy, ['alice', 'bob'], 'and who is in a game')
  const fresh = await connect(url, { token: tokenFor('dave') })
  t.equal((await nextOfType<Welcome>(fresh.messages, 'welcome')).match, undefined, 'a player in no match is sent to none')

  lobby.lobby.matchOver(matchId)
  t.same((await nextOfType<Players>(carol.messages, 'players', (m) => m.busy.length === 0)).busy, [], 'once the game reports the match over, nobody is busy')
  carol.ws.send(JSON.stringify({ type: 'rematch', matchId }))
  t.match(await error(carol), /did not play in that match/, 'a non-player still cannot ask a rematch of it')
  back.ws.send(JSON.stringify({ type: 'rematch', matchId }))
  t.same(await nextOfType(back.messages, 'challenge-sent'), { type: 'challenge-sent', to: 'bob', rematch: true }, 'the rematch goes to the former opponent')
  t.same(await nextOfType(bob.messages, 'challenged', (m: { rematch: boolean }) => m.rematch), { type: 'challenged', from: 'alice', rematch: true }, 'who is told it is a rematch')
  bob.ws.send(JSON.stringify({ type: 'accept', from: 'alice' }))
  const again = await nextOfType<{ matchId: string, opponent: string }>(back.messages, 'match')
  t.not(again.matchId, matchId, 'a rematch is a new match')
  t.equal(again.opponent, 'bob', 'against the same opponent')
  const reconnect = await connect(url, { token: tokenFor('bob') })
  t.same((await nextOfType<Welcome>(reconnect.messages, 'welcome')).match, { matchId: again.matchId, opponent: 'alice' }, 'the lobby now sends bob to the new match')
})

async function gameSetup (t: Test, graceMs: number) {
  const ended = new Inbox<string>()
  const game = await startGame({ token: BACKEND_TOKEN, graceMs, logger: captureLogger(), onMatchOver: (matchId) => ended.push(matchId) })
  t.teardown(() => game.stop())
  const linked = synced(game.backend, 2)
  const backend = { url: game.url, token: BACKEND_TOKEN, minReconnectDelayMs: 20, maxReconnectDelayMs: 200 }
  const gateway = await startGateway(t, testConfig([
    { name: 'game', path: '/game/:matchId', backend },
    { name: 'bare', path: '/bare', backend }
  ]))
  await linked
  const join = async (user: string, matchId = 'm1'): Promise<TestClient> => await connect(gateway.url(`/game/${matchId}`), { token: tokenFor(user) })
  return { game, gateway, join, ended }
}

const state = async (client: TestClient, match: (s: GameState) => boolean = () => true): Promise<GameState> =>
  await nextOfType<GameState>(client.messages, 'state', match)

/** Seats alice then bob; `t` is the subtest's own, so a failure is reported where it happened. */
async function startMatch (t: Pick<typeof tap, 'equal'>, join: (user: string) => Promise<TestClient>) {
  const alice = await join('alice')
  t.equal((await state(alice)).status, 'waiting', 'the first player waits for an opponent')
  const bob = await join('bob')
  const forBob = await state(bob)
  await state(alice, (s) => s.status === 'playing')
  return { alice, bob, forBob }
}

tap.test('game: seats, turns, illegal moves, a win, and a full match', async (t) => {
  const { join, gateway, ended } = await gameSetup(t, 30000)
  const { alice, bob, forBob } = await startMatch(t, join)
  t.same([forBob.you, forBob.players, forBob.turn, forBob.status], ['yellow', { red: 'alice', yellow: 'bob' }, 'red', 'playing'], 'first to arrive plays red and moves first')

  const illegal: Array<[TestClient, unknown, RegExp]> = [
    [bob, { type: 'move', column: 0 }, /not your turn/],
    [alice, { type: 'move', column: 7 }, /integer from 0 to 6/],
    [alice, { type: 'move', column: -1 }, /integer from 0 to 6/],
    [alice, { type: 'move', column: '3' }, /integer from 0 to 6/],
    [alice, { type: 'move' }, /integer from 0 to 6/],
    [alice, { type: 'jump' }, /unknown request/],
    [alice, 'garbage {', /unknown request/]
  ]
  for (const [client, request, expected] of illegal) {
    client.ws.send(typeof request === 'string' ? request : JSON.stringify(request))
    t.match(await error(client), expected, `refused: ${JSON.stringify(request)}`)
  }

  // red stacks column 3, yellow column 4: red's fourth disc wins
  const moves = [[alice, 3], [bob, 4], [alice, 3], [bob, 4], [alice, 3], [bob, 4], [alice, 3]] as const
  for (const [i, [client, column]] of moves.entries()) {
    client.ws.send(JSON.stringify({ type: 'move', column }))
    await state(alice, (s) => s.cells.flat().filter(Boolean).length === i + 1)
  }
  const final = await state(bob, (s) => s.status === 'over')
  t.same(final.result, { winner: 'red', reason: 'four', line: [[2, 3], [3, 3], [4, 3], [5, 3]] }, 'red wins with four in column 3, the line named')
  t.equal(final.cells[5][4], 'yellow', 'yellow\'s discs stay where they fell')
  t.equal(await ended.next(() => true, 10000, 'the match reported over'), 'm1', 'the win is reported to whoever tracks matches (the lobby)')
  bob.ws.send(JSON.stringify({ type: 'move', column: 0 }))
  t.match(await error(bob), /the game is over/, 'no move after the game is over')

  const carol = await join('carol')
  t.same(await carol.closed, { code: 4403, reason: 'this match already has two players' }, 'a third player is turned away')
  const bare = await connect(gateway.url('/bare'), { token: tokenFor('dave') })
  t.same(await bare.closed, { code: 4400, reason: 'connect to /game/<matchId>' }, 'an endpoint without :matchId is refused')

  const lonely = await join('erin', 'm2')
  t.equal((await state(lonely)).status, 'waiting', 'a new match waits for its second player')
  lonely.ws.close()
  t.equal(await ended.next(() => true, 10000, 'the abandoned match reported over'), 'm2', 'a match left before the opponent came is reported over, so the lobby frees both')
  t.same(ended.all, ['m1', 'm2'], 'each match is reported once')
})

tap.test('game: a player who drops mid-game loses after the grace period', async (t) => {
  const { join, ended } = await gameSetup(t, 50)
  const { alice, bob } = await startMatch(t, join)
  bob.ws.terminate()
  const away = await state(alice, (s) => s.away.length > 0)
  t.same(away.away, ['bob'], 'the opponent is shown as away')
  t.same(Object.keys(away.forfeitInMs), ['bob'], 'with a forfeit countdown for them alone')
  t.ok(away.forfeitInMs.bob >= 0 && away.forfeitInMs.bob <= 50, `the countdown is within the grace period (${away.forfeitInMs.bob} ms)`)
  const over = await state(alice, (s) => s.status === 'over')
  t.same(over.result, { winner: 'red', reason: 'forfeit' }, 'the player who stayed wins by forfeit')
  t.equal(await ended.next(() => true, 10000, 'the forfeit reported'), 'm1', 'the forfeit ends the match for the lobby')
})

tap.test('game: a player back within the grace period finds the same match; resigning ends it', async (t) => {
  const { join, game, ended } = await gameSetup(t, 60000)
  const { alice, bob } = await startMatch(t, join)
  alice.ws.send(JSON.stringify({ type: 'move', column: 2 }))
  await state(bob, (s) => s.cells[5][2] === 'red')
  t.same((await state(alice, (s) => s.cells[5][2] === 'red')).forfeitInMs, {}, 'nobody is away: no countdown')
  bob.ws.close(1001)
  const away = await state(alice, (s) => s.away.includes('bob'))
  t.ok(away.forfeitInMs.bob > 0 && away.forfeitInMs.bob <= 60000, 'the opponent is shown how long bob has left')
  const again = await join('bob')
  const resumed = await state(again)
  t.same([resumed.you, resumed.cells[5][2], resumed.turn, resumed.status], ['yellow', 'red', 'yellow', 'playing'], 'same seat, same board, same turn')
  const back = await state(alice, (s) => s.away.length === 0)
  t.same(back.players, { red: 'alice', yellow: 'bob' }, 'the returning player is no longer away')
  t.same(back.forfeitInMs, {}, 'and the forfeit countdown stopped')

  again.ws.send(JSON.stringify({ type: 'resign' }))
  t.same((await state(alice, (s) => s.status === 'over')).result, { winner: 'red', reason: 'resign' }, 'resigning gives the other player the win')
  again.ws.send(JSON.stringify({ type: 'resign' }))
  t.match(await error(again), /nothing to resign/, 'a second resign is refused')
  t.equal(game.game.match('m1')?.status, 'over', 'the match is over on the server too')
  t.equal(await ended.next(() => true, 10000, 'the resignation reported'), 'm1', 'and reported over')
})
