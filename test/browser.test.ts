/**
 * The demo end to end in a real browser: Debian's chromium driven by
 * playwright-core. Two players join the lobby, chat, start a match, and play
 * it to a win; one reloads mid-game and is put back into the same match.
 */
import { existsSync, mkdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Writable } from 'node:stream'
import t from 'tap'
import { chromium, type Page } from 'playwright-core'
import { startDemo } from '../examples/demo/start-demo.js'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
// playwright gives every launch a fresh temporary profile (it refuses --user-data-dir with launch())
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic', '--no-first-run']

/** The demo on ephemeral ports, its logs captured, and a Chromium to open pages on it. */
async function demoInChromium (t: { teardown (fn: () => unknown): void }) {
  const logs: string[] = []
  const logStream = new Writable({
    write (chunk: Buffer, _encoding, done) {
      logs.push(...chunk.toString().split('\n').filter(Boolean))
      done()
    }
  })
  const demo = await startDemo({ configFile: join(ROOT, 'gateway.config.json'), ephemeralPorts: true, logStream, env: {} })
  t.teardown(() => demo.close())
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS })
  t.teardown(() => browser.close())
  const open = async (): Promise<Page> => {
    const page = await (await browser.newContext()).newPage()
    page.setDefaultTimeout(15000)
    await page.goto(demo.url)
    return page
  }
  return { demo, logs, open }
}

async function joinLobby (page: Page, name: string): Promise<void> {
  await page.fill('#name', name)
  await page.click('#join-form button')
  await page.waitForSelector('#lobby-status[data-state="open"]')
}

/** The players a page lists as online, by their data-user. */
async function online (page: Page): Promise<string[]> {
  return (await page.$$eval('#players li', (items) => items.map((item) => item.getAttribute('data-user') ?? ''))).sort()
}

t.test('demo preconditions', async (t) => {
  t.ok(existsSync(CHROMIUM), `chromium at ${CHROMIUM} (set CHROMIUM_PATH to use another)`)
})

t.test('two players in real browsers: lobby, chat, a match played to a win, and a reload mid-game', { skip: !existsSync(CHROMIUM) && 'no chromium' }, async (t) => {
  const { logs, open } = await demoInChromium(t)
  const [alice, bob] = await Promise.all([open(), open()])
  await joinLobby(alice, 'alice')
  await joinLobby(bob, 'bob')
  await alice.waitForSelector('#players li[data-user="bob"]')
  await bob.waitForSelector('#players li[data-user="alice"]')
  t.same([await online(alice), await online(bob)], [['alice', 'bob'], ['alice', 'bob']], 'each sees both players online, nobody else')

  await alice.fill('#chat-text', 'good luck, bob')
  await alice.press('#chat-text', 'Enter')
  const line = await bob.waitForSelector('#chat li:has-text("good luck, bob")')
  t.equal(await line.$eval('b', (from) => from.textContent), 'alice', 'chat reaches the other player, with who said it')

  await alice.click('#players li[data-user="bob"] button.challenge')
  await bob.click('#challenges [data-from="alice"] button.accept')
  await Promise.all([alice, bob].map((page) => page.waitForSelector('#game[data-status="playing"]')))
  const aliceColor = await alice.getAttribute('#game', 'data-you')
  const [red, yellow] = aliceColor === 'red' ? [alice, bob] : [bob, alice]
  t.equal(await yellow.getAttribute('#game', 'data-you'), 'yellow', 'one red, one yellow')

  let moves = 0
  const play = async (page: Page, column: number): Promise<void> => {
    await page.click(`#board .column[data-col="${column}"]`)
    moves++
    await Promise.all([red, yellow].map((p) => p.waitForSelector(`#game[data-moves="${moves}"]`)))
  }
  await play(red, 3)
  await play(yellow, 4)
  await play(red, 3)
  await play(yellow, 4)

  await yellow.reload()
  await yellow.waitForSelector('#game-status[data-state="open"]')
  await yellow.waitForSelector('#game[data-you="yellow"][data-moves="4"][data-status="playing"]')
  t.equal(await yellow.getAttribute('#board .cell[data-row="5"][data-col="4"]', 'data-disc'), 'yellow', 'after the reload: the same match, the same board')
  await yellow.waitForSelector('#lobby-status[data-state="open"]')

  await play(red, 3)
  await play(yellow, 4)
  await play(red, 3)
  await red.waitForSelector('#game[data-result="win"]')
  await yellow.waitForSelector('#game[data-result="loss"]')
  t.match(await red.textContent('#game-info'), /You win! \(four in a row\)/, 'red is told it won with four in a row')
  t.equal(await red.locator('#board .cell.winning').count(), 4, 'the winning four are marked')

  mkdirSync(join(ROOT, 'test', 'artifacts'), { recursive: true })
  await red.locator('#game').screenshot({ path: join(ROOT, 'test', 'artifacts', 'connect-four-board.png') })
  await yellow.screenshot({ path: join(ROOT, 'test', 'artifacts', 'demo-page.png'), fullPage: true })
  t.notOk(logs.some((line) => /eyJ[\w-]+\.eyJ/.test(line)), 'no token appears in any log line')
})

t.test('what the demo refuses from a browser', { skip: !existsSync(CHROMIUM) && 'no chromium' }, async (t) => {
  const { open } = await demoInChromium(t)
  const page = await open()
  const status = await page.evaluate(async () => (await fetch('/demo/token', {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: '../../etc' })
  })).status)
  t.equal(status, 400, 'the token route refuses a name that is not a plain id')

  const outcome = await page.evaluate(async () => await new Promise<string>((resolve) => {
    const socket = new WebSocket(`ws://${location.host}/lobby`, ['bearer', 'not.a.jwt'])
    socket.onopen = () => resolve('opened')
    socket.onclose = (event) => resolve(`closed ${event.code}`)
  }))
  t.equal(outcome, 'closed 1006', 'a bad token never gets a WebSocket')

  // the page itself: an empty name never reaches the token route, a bad one is explained
  await page.fill('#name', 'bad name!')
  await page.evaluate(() => { (document.getElementById('name') as HTMLInputElement).removeAttribute('pattern') })
  await page.click('#join-form button')
  await page.waitForSelector('#join-error:has-text("Cannot join")')
  t.equal(await page.isHidden('#lobby'), true, 'still outside the lobby')
})
