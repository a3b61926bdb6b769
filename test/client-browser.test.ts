/**
 * The browser client (src/client, the gatehouse-client package) in Debian's
 * chromium against a real gateway and backend: the page imports the compiled
 * ES modules as a bundler-free app would, and mints each token through a
 * function exposed from this test, so every token is counted and numbered.
 */
import { existsSync } from 'node:fs'
import t from 'tap'
import { chromium, type Browser, type Page } from 'playwright-core'
import type { FastifyInstance } from 'fastify'
import { createGateway } from '../src/index.js'
import { CloseCodes } from '../protocol/index.js'
import { DUPLICATE_REJECTED_REASON, TOO_MANY_FRAGMENTS_REASON, retryAfterClose } from '../src/client/index.js'
import { GatehouseBackend, type BackendLogger, type Claims } from '../src/sdk/index.js'
import { connect } from './helpers/client.js'
import { CHROMIUM, CHROMIUM_ARGS, PAGE, serveClientPage } from './helpers/browser.js'
import { testConfig } from './helpers/gateway.js'
import { freePort } from './helpers/ports.js'
import { tokenFor } from './helpers/tokens.js'
import { Inbox } from './helpers/waiter.js'


type Teardown = { teardown (fn: () => unknown): void }

// eight Chromium scenarios, each awaiting page events of up to 20 s: the suite's 60 s per file is too
// little when the machine is loaded (a restart scenario once ran out of it in a full run on 2 cores)
t.setTimeout(240_000)

const BACKEND_TOKEN = 'echo-backend-token'
const quiet: BackendLogger = { debug () {}, info () {}, warn () {}, error () {} }

/** An echo service on the SDK: every message goes back to its sender as it came. */
interface Echo {
  url: string
  opens: Inbox<{ user: string, claims: Claims }>
  messages: Inbox<{ user: string, data: unknown }>
}

async function startEcho (t: Teardown): Promise<Echo> {
  const opens = new Inbox<{ user: string, claims: Claims }>()
  const messages = new Inbox<{ user: string, data: unknown }>()
  const backend = new GatehouseBackend({ token: BACKEND_TOKEN, logger: quiet }, {
    onOpen: (user, claims) => opens.push({ user, claims }),
    onMessage: (user, data) => {
      messages.push({ user, data })
      backend.send(user, data)
    }
  })
  const { url } = await backend.listen()
  t.teardown(() => backend.stop())
  return { url, opens, messages }
}

async function gatewayOn (t: Teardown, port: number, backend: Echo): Promise<FastifyInstance> {
  const config = testConfig([{ name: 'echo', path: '/echo', backend: { url: backend.url, token: BACKEND_TOKEN, minReconnectDelayMs: 20, maxReconnectDelayMs: 200 } }], { log: { level: 'warn' } })
  const app = await createGateway(config, { logStream: { write: () => true } as never })
  serveClientPage(app, 'client')
  await app.listen({ host: '127.0.0.1', port })
  t.teardown(() => app.close())
  return app
}

interface Setup {
  backend: Echo
  app: FastifyInstance
  port: number
  url: string
  page: Page
  /** Tokens minted per user, in order: `n` numbers them in the claims. */
  minted: Map<string, number>
}

async function setup (t: Teardown, browser: Browser): Promise<Setup> {
  const backend = await startEcho(t)
  const port = await freePort()
  const app = await gatewayOn(t, port, backend)
  const context = await browser.newContext()
  t.teardown(() => context.close())
  const page = await context.newPage()
  page.setDefaultTimeout(20000)
  const minted = new Map<string, number>()
  await page.exposeFunction('mintToken', (user: string, valid: boolean) => {
    const n = (minted.get(user) ?? 0) + 1
    minted.set(user, n)
    return valid ? tokenFor(user, { n }) : 'not-a-jwt'
  })
  await page.goto(`http://127.0.0.1:${port}${PAGE}/`)
  // every client of the page records its events in window.events[name]
  await page.evaluate(async () => {
    const w = window as any
    w.lib = await import('./client/index.js' as string)
    w.clients = {}
    w.events = {}
    w.open = (name: string, url: string, user: string, options: Record<string, unknown> = {}) => {
      const client = new w.lib.GatehouseClient(url, { token: () => w.mintToken(user, options.valid ?? true), minDelayMs: 50, maxDelayMs: 400, ...options })
      w.events[name] = []
      for (const type of ['connecting', 'open', 'message', 'replaced', 'closed']) {
        client.on(type, (event: unknown) => w.events[name].push({ type, ...(event as object) }))
      }
      w.clients[name] = client
    }
  })
  return { backend, app, port, url: `ws://127.0.0.1:${port}/echo`, page, minted }
}

/** Waits until client `name` has recorded an event matching `match` (a partial object), and returns its events so far. */
async function waitFor (page: Page, name: string, match: Record<string, unknown>, count = 1): Promise<Array<Record<string, any>>> {
  await page.waitForFunction(([name, match, count]) => {
    const events = ((window as any).events[name] ?? []) as Array<Record<string, unknown>>
    return events.filter((e) => Object.entries(match).every(([k, v]) => e[k] === v)).length >= count
  }, [name, match, count] as const)
  return await page.evaluate((name) => (window as any).events[name], name)
}

t.test('the close policy is the gateway catalog (protocol/PROTOCOL.md §7)', async (t) => {
  t.equal(DUPLICATE_REJECTED_REASON, CloseCodes.DUPLICATE_REJECTED.reason, 'the duplicate-reject 1008 is told apart by the same reason')
  t.equal(TOO_MANY_FRAGMENTS_REASON, CloseCodes.TOO_MANY_FRAGMENTS.reason, 'so is the fragments 1008')
  for (const [name, { code, reason, retry }] of Object.entries(CloseCodes)) {
    t.equal(retryAfterClose(code, reason) !== 'never', retry, `${name} (${code}): retry ${retry}`)
  }
  t.equal(retryAfterClose(1013, CloseCodes.BACKEND_UNAVAILABLE.reason), 'pause', '1013 waits at least the pause')
  t.equal(retryAfterClose(4401, 'token expired'), 'now', '4401 retries at once, with a new token')
  t.equal(retryAfterClose(4403, 'match full'), 'never', "a backend's own 4xxx is meant")
})

t.test('gatehouse-client in chromium', { skip: !existsSync(CHROMIUM) && `no chromium at ${CHROMIUM}` }, async (t) => {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS })
  t.teardown(() => browser.close())

  t.test('connects with the token as the bearer subprotocol; a message sent before open waits in the outbox, then round-trips', async (t) => {
    const { backend, url, page } = await setup(t, browser)
    await page.evaluate((url) => {
      const w = window as any
      w.open('a', url, 'alice')
      w.sent = w.clients.a.sendJson({ hi: 1 })
    }, url)
    const open = await backend.opens.next((o) => o.user === 'alice')
    t.equal(open.claims.sub, 'alice', 'the gateway verified the token the client offered')
    const events = await waitFor(page, 'a', { type: 'message' })
    t.same(events.find((e) => e.type === 'message')?.data, '{"hi":1}', 'the queued message went out on open and came back')
    t.equal(await page.evaluate(() => (window as any).sent), true, 'send while connecting queued the message')
    t.equal(await page.evaluate(() => (window as any).clients.a.state), 'open', 'the client state is open')
  })

  t.test('after the gateway drops the socket (1001 on restart) the client reconnects with a fresh token', async (t) => {
    const { backend, app, port, url, page, minted } = await setup(t, browser)
    await page.evaluate((url) => (window as any).open('a', url, 'alice', { maxFailedAttempts: Infinity }), url)
    t.equal((await backend.opens.next()).claims.n, 1, 'first token')
    const closed = waitFor(page, 'a', { type: 'closed', code: 1001 })
    // a deploy: the gateway drains (its clients get 1001) and a new one starts on the same port
    await app.close()
    await gatewayOn(t, port, backend)
    const events = await closed
    const drop = events.find((e) => e.type === 'closed' && e.code === 1001)
    t.equal(drop?.retry, true, '1001: retry')
    const reopened = await backend.opens.next(() => true, 20000)
    t.ok((reopened.claims.n as number) > 1, 'the new connection carries a newer token')
    t.ok((minted.get('alice') ?? 0) >= 2, 'token() was called again')
    await waitFor(page, 'a', { type: 'open' }, 2)
    await page.evaluate(() => (window as any).clients.a.sendJson({ after: 'restart' }))
    await waitFor(page, 'a', { type: 'message', data: '{"after":"restart"}' })
    t.pass('messages flow on the new connection')
  })

  t.test('replaced (4409): a replaced event, closed without retry, no new token', async (t) => {
    const { backend, url, page, minted } = await setup(t, browser)
    await page.evaluate((url) => (window as any).open('a', url, 'alice'), url)
    await backend.opens.next()
    await waitFor(page, 'a', { type: 'open' })
    const other = await connect(url, { token: tokenFor('alice') })
    t.teardown(() => other.ws.close())
    const events = await waitFor(page, 'a', { type: 'closed' })
    t.same(events.filter((e) => e.type === 'replaced').map((e) => e.reason), [CloseCodes.REPLACED.reason], 'told it was replaced')
    const closed = events.find((e) => e.type === 'closed')
    t.match(closed, { code: 4409, retry: false, opened: true }, 'closed, and the decision is not to retry')
    t.equal(await page.evaluate(() => (window as any).clients.a.state), 'closed', 'the replaced client stays in state closed')
    // the newer connection is live and answers, so the old one had time to retry had it wanted to
    other.ws.send('ping')
    t.equal(String(await other.next()), 'ping', 'the newer connection works')
    t.equal(minted.get('alice'), 1, 'no further token was asked for')
  })

  t.test('a bad token (401 at the handshake) is retried a bounded number of times, each with a fresh token, then the client gives up', async (t) => {
    const { url, page, minted } = await setup(t, browser)
    await page.evaluate((url) => (window as any).open('a', url, 'mallory', { valid: false, maxFailedAttempts: 3 }), url)
    const events = await waitFor(page, 'a', { type: 'closed', retry: false })
    const closes = events.filter((e) => e.type === 'closed')
    t.same(closes.map((e) => [e.code, e.opened, e.retry]), [[1006, false, true], [1006, false, true], [1006, false, false]], 'a browser sees 1006 without open; the third failure in a row ends it')
    t.equal(minted.get('mallory'), 3, 'one fresh token per attempt, three attempts')
    t.equal(events.filter((e) => e.type === 'open').length, 0, 'never opened')
    t.equal(await page.evaluate(() => (window as any).clients.a.state), 'closed', 'having given up, the client is in state closed')
  })

  t.test('the outbox is bounded: past outboxLimit, send returns false; what was kept goes out in order on open', async (t) => {
    const { backend, url, page } = await setup(t, browser)
    const results = await page.evaluate((url) => {
      const w = window as any
      // the token waits for the test, so the client stays in "connecting" while the app sends
      let release: (token: string) => void = () => {}
      const token = new Promise<string>((resolve) => { release = resolve })
      w.release = async () => release(await w.mintToken('alice', true))
      w.open('a', url, 'alice', { outboxLimit: 3, token: () => token })
      return [1, 2, 3, 4, 5].map((n) => w.clients.a.send(`m${n}`))
    }, url)
    t.same(results, [true, true, true, false, false], 'three kept, two refused')
    await page.evaluate(() => (window as any).release())
    await backend.opens.next()
    const got = [await backend.messages.next(), await backend.messages.next(), await backend.messages.next()]
    t.same(got.map((m) => m.data), ['m1', 'm2', 'm3'], 'the kept messages, in order')
    await waitFor(page, 'a', { type: 'message' }, 3)
    t.equal(await page.evaluate(() => (window as any).clients.a.send('m6')), true, 'open: sent at once')
    t.equal((await backend.messages.next()).data, 'm6', 'the next message the service gets is m6: the refused ones were never sent')
  })
})
