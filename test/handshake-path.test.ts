/**
 * Issue 15 item 3, the reconnect storm: what a player's upgrade costs the
 * gateway was cut, and these are the behaviours each cut must keep. A
 * request's child logger is made only when a line is written at a level the
 * logger writes, and then carries the request's `reqId` as before.
 */
import { Writable } from 'node:stream'
import t from 'tap'
import { pino } from 'pino'
import type { FastifyBaseLogger } from 'fastify'
import { lazyRequestLogger } from '../src/logger.js'
import { backendFor } from './helpers/backend.js'
import { startGateway, testConfig, type TestGateway } from './helpers/gateway.js'
import { connect, refusal } from './helpers/client.js'
import { tokenFor } from './helpers/tokens.js'

type Teardown = { teardown (fn: () => unknown): void }

/** A real pino logger at `level` writing into `lines`, counting the children made of it. */
function counted (level: string): { logger: FastifyBaseLogger, lines: Array<Record<string, unknown>>, children: () => number } {
  const lines: Array<Record<string, unknown>> = []
  let children = 0
  const stream = new Writable({
    write (chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line))
      done()
    }
  })
  const logger = pino({ level, onChild: () => { children++ } }, stream)
  return { logger, lines, children: () => children }
}

async function setup (t: Teardown, level: string): Promise<TestGateway> {
  const backend = await backendFor(t)
  const gateway = await startGateway(t, testConfig([{ name: 'lobby', path: '/lobby/:room', backend: backend.url }], { log: { level } }))
  await backend.next('hello')
  return gateway
}

t.test('a request logger is made on its first line at an enabled level, with its reqId', async (t) => {
  const { logger, lines, children } = counted('warn')
  const log = lazyRequestLogger(logger, { reqId: 'req-1' }, {})
  log.info({ detail: 1 }, 'below the level')
  log.debug('below the level too')
  t.equal(children(), 0, 'no child made for lines the logger does not write')
  t.equal(lines.length, 0, 'nothing written below the level')
  log.warn({ detail: 2 }, 'at the level')
  log.error('above it')
  t.equal(children(), 1, 'one child made, on the first line written, and kept')
  t.same(lines.map((l) => [l.reqId, l.msg]), [['req-1', 'at the level'], ['req-1', 'above it']], 'every line carries the reqId')
  t.equal(lines[0]?.detail, 2, 'the line keeps its fields')
  t.equal(log.level, 'warn', 'the level is the logger\'s')
  log.child({ part: 'x' }).warn('from a grandchild')
  t.match(lines[2], { reqId: 'req-1', part: 'x', msg: 'from a grandchild' }, 'a child of the request logger has both bindings')
})

t.test('a level set on a request logger applies to it alone', async (t) => {
  const { logger, lines } = counted('warn')
  const log = lazyRequestLogger(logger, { reqId: 'req-2' }, {})
  log.level = 'debug'
  log.debug('now written')
  t.same(lines.map((l) => [l.reqId, l.msg]), [['req-2', 'now written']], 'the request logger writes at its own level')
  logger.info('parent stays at warn')
  t.equal(lines.length, 1, 'the parent\'s level is unchanged')
})

t.test('a route level or serializers make the child at once, as fastify does', async (t) => {
  const { logger, lines, children } = counted('warn')
  const log = lazyRequestLogger(logger, { reqId: 'req-3' }, { level: 'debug' })
  t.equal(children(), 1, 'made at once')
  log.debug('written at the route\'s level')
  t.same(lines.map((l) => [l.reqId, l.msg]), [['req-3', 'written at the route\'s level']], 'the route level applies')
})

t.test('at info, a handshake\'s request lines still carry one reqId', async (t) => {
  const gateway = await setup(t, 'info')
  const refused = await refusal(gateway.url('/lobby/r1'), { token: 'not-a-jwt' })
  t.equal(refused.status, 401, 'a bad token is refused with 401')
  const incoming = await gateway.logged(/incoming request/)
  const line = await gateway.logged(/handshake refused/)
  t.type(line.reqId, 'string', 'the refusal line has a reqId')
  t.equal(line.reqId, incoming.reqId, 'the refusal and the incoming request lines share the reqId')
  const ok = await connect(gateway.url('/lobby/r1'), { token: tokenFor('alice') })
  const next = await gateway.logged(/incoming request/)
  t.not(next.reqId, line.reqId, 'the next request has its own reqId')
  ok.ws.close()
})

t.test('at warn, a refused handshake is still refused and logs nothing below warn', async (t) => {
  const gateway = await setup(t, 'warn')
  const refused = await refusal(gateway.url('/lobby/r1'), { token: 'not-a-jwt' })
  t.equal(refused.status, 401, 'a bad token is refused with 401')
  const ok = await connect(gateway.url('/lobby/r1'), { token: tokenFor('alice') })
  t.equal(ok.ws.readyState, ok.ws.OPEN, 'a good token opens')
  ok.ws.close()
  t.notOk(gateway.logs.some((l) => /incoming request|handshake refused/.test(l)), 'no info line written')
})
