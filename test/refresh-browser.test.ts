/**
 * The browser client refreshes its token on its own ahead of `exp`, in
 * Debian's chromium (docs/client.md, "Token refresh"; PROTOCOL.md §5d): a
 * new socket opens before the old one is closed, the page's messages and the
 * service's echoes all arrive once and in order, and nobody is closed, not
 * even under `enforceExpiry` with 3-second tokens, and even when one refresh
 * is refused (a bad token from the token route).
 */
import { existsSync } from 'node:fs'
import t from 'tap'
import { chromium } from 'playwright-core'
import { createGateway } from '../src/index.js'
import { GatehouseBackend, type BackendLogger } from '../src/sdk/index.js'
import { CHROMIUM, CHROMIUM_ARGS, PAGE, serveClientPage } from './helpers/browser.js'
import { testConfig } from './helpers/gateway.js'
import { freePort } from './helpers/ports.js'
import { tokenFor } from './helpers/tokens.js'

const BACKEND_TOKEN = 'echo-backend-token'
const quiet: BackendLogger = { debug () {}, info () {}, warn () {}, error () {} }

t.test('gatehouse-client in chromium refreshes ahead of exp with nothing lost', { skip: !existsSync(CHROMIUM) && `no chromium at ${CHROMIUM}` }, async (t) => {
  const seen = { opens: 0, closes: 0, refreshes: 0 }
  const backend = new GatehouseBackend({ token: BACKEND_TOKEN, logger: quiet }, {
    onOpen: () => { seen.opens++ },
    onRefresh: () => { seen.refreshes++ },
    onClose: () => { seen.closes++ },
    onMessage: (user, data) => { backend.send(user, data) }
  })
  const { url: backendUrl } = await backend.listen()
  t.teardown(() => backend.stop())
  const port = await freePort()
  const config = testConfig([{ name: 'echo', path: '/echo', enforceExpiry: true, backend: { url: backendUrl, token: BACKEND_TOKEN, refresh: true } }], { log: { level: 'warn' } })
  const app = await createGateway(config, { logStream: { write: () => true } as never })
  serveClientPage(app, 'refresh')
  await app.listen({ host: '127.0.0.1', port })
  t.teardown(() => app.close())

  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS })
  t.teardown(() => browser.close())
  const page = await browser.newPage()
  page.setDefaultTimeout(30000)
  let minted = 0
  // 3-second tokens: with enforceExpiry, a refresh that did not happen would be a 4401 within the test
  // bad input: the token route hands out garbage once (the first refresh): that refresh is refused (401) and tried again
  await page.exposeFunction('mintToken', () => ++minted === 2 ? 'not-a-jwt' : tokenFor('ada', { n: minted, exp: Math.floor(Date.now() / 1000) + 3 }))
  await page.goto(`http://127.0.0.1:${port}${PAGE}/`)
  await page.evaluate(async (url) => {
    const w = window as any
    const lib = await import('./client/index.js' as string)
    w.log = { received: [] as string[], closed: [] as number[], refreshed: 0, sent: 0 }
    const client = new lib.GatehouseClient(url, { token: () => w.mintToken(), refreshAheadMs: 1500, minDelayMs: 50, maxDelayMs: 400 })
    client.on('message', ({ data }: { data: string }) => w.log.received.push(String(data)))
    client.on('closed', ({ code }: { code: number }) => w.log.closed.push(code))
    client.on('refreshed', () => { w.log.refreshed++ })
    // 20 a second, under the rate limit; the outbox keeps the first ones until open
    w.pump = setInterval(() => { client.send(String(++w.log.sent)) }, 50)
    w.client = client
  }, `ws://127.0.0.1:${port}/echo`)
  await page.waitForFunction(() => (window as any).log.refreshed >= 3)
  await page.evaluate(() => clearInterval((window as any).pump))
  await page.waitForFunction(() => { const log = (window as any).log; return log.received.length >= log.sent })
  const log = await page.evaluate(() => (window as any).log) as { received: string[], closed: number[], refreshed: number, sent: number }
  t.same(log.received, Array.from({ length: log.sent }, (_, i) => String(i + 1)), `all ${log.sent} messages went out and came back once, in order, across ${log.refreshed} refreshes`)
  t.same(log.closed, [], 'the page saw no close')
  t.ok(minted >= log.refreshed + 2, `a token per refresh, plus the refused one (${minted} minted)`)
  t.equal(seen.opens, 1, 'the service saw one open')
  t.equal(seen.closes, 0, 'and no close')
  t.ok(seen.refreshes >= 3, `and a refresh for each (${seen.refreshes})`)
  await page.evaluate(() => (window as any).client.close())
})
