/**
 * The demo end to end in a real browser: Debian's chromium driven by
 * playwright-core. Two players join the lobby, chat, start a match, play it
 * to a win (one reloads mid-game) and play a rematch; a player closes the tab
 * mid-game and comes back to the match; a second tab replaces the first.
 * Each stage is screenshotted into test/artifacts (paths in the test output).
 */
import { existsSync, mkdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Writable } from 'node:stream'
import t from 'tap'
import { chromium, type BrowserContext, type Page } from 'playwright-core'
import { startDemo } from '../examples/demo/start-demo.js'
import { CHROMIUM, CHROMIUM_ARGS } from './helpers/browser.js'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')

const ARTIFACTS = join(ROOT, 'test', 'artifacts')

interface Player {
  page: Page
  context: BrowserContext
  /** Responses of 400 and up the page got (a missing favicon was one). */
  failed: string[]
}

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
  /** A page in a new browser context (another person), or a new tab in `context` (the same person). */
  const open = async (viewport = { width: 1280, height: 650 }, context?: BrowserContext): Promise<Player> => {
    const ctx = context ?? await browser.newContext({ viewport })
    const page = await ctx.newPage()
    await page.setViewportSize(viewport)
    page.setDefaultTimeout(15000)
    const failed: string[] = []
    page.on('response', (response) => { if (response.status() >= 400) failed.push(`${response.status()} ${response.url()}`) })
    await page.goto(demo.url)
    return { page, context: ctx, failed }
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

/** A screenshot of the whole page into test/artifacts, its path in the test output. */
async function snap (t: { comment (...message: unknown[]): void }, page: Page, name: string): Promise<void> {
  mkdirSync(ARTIFACTS, { recursive: true })
  const path = join(ARTIFACTS, `${name}.png`)
  await page.screenshot({ path, fullPage: true })
  t.comment(`screenshot: ${path}`)
}

/** How the page fits its viewport: sideways overflow, and where the board's bottom row ends. */
async function layout (page: Page): Promise<{ overflowX: number, boardBottom: number, viewportHeight: number }> {
  return await page.evaluate(() => ({
    overflowX: document.documentElement.scrollWidth - window.innerWidth,
    boardBottom: document.querySelector('#board .cell[data-row="5"]')?.getBoundingClientRect().bottom ?? Number.NaN,
    viewportHeight: window.innerHeight
  }))
}

/** Two players, alice and bob, in a match made through the lobby's Challenge and Accept buttons. */
async function matched (alice: Page, bob: Page): Promise<{ red: Page, yellow: Page }> {
  await alice.waitForSelector('#players li[data-user="bob"] button.challenge')
  await alice.click('#players li[data-user="bob"] button.challenge')
  await bob.click('#challenges [data-from="alice"] button.accept')
  await Promise.all([alice, bob].map((page) => page.waitForSelector('#game[data-status="playing"]')))
  return (await alice.getAttribute('#game', 'data-you')) === 'red' ? { red: alice, yellow: bob } : { red: bob, yellow: alice }
}

t.test('demo preconditions', async (t) => {
  t.ok(existsSync(CHROMIUM), `chromium at ${CHROMIUM} (set CHROMIUM_PATH to use another)`)
})

t.test('two players in real browsers: lobby, chat, a match played to a win, a reload mid-game, a rematch', { skip: !existsSync(CHROMIUM) && 'no chromium' }, async (t) => {
  const { logs, open } = await demoInChromium(t)
  const [a, b] = await Promise.all([open(), open()])
  const [alice, bob] = [a.page, b.page]
  await joinLobby(alice, 'alice')
  await joinLobby(bob, 'bob')
  await alice.waitForSelector('#players li[data-user="bob"]')
  await bob.waitForSelector('#players li[data-user="alice"]')
  t.same([await online(alice), await online(bob)], [['alice', 'bob'], ['alice', 'bob']], 'each sees both players online, nobody else')
  t.equal(await alice.textContent('#lobby-status'), 'Lobby: connected', 'the pill says it in plain words')

  await alice.fill('#chat-text', 'good luck, bob')
  await alice.press('#chat-text', 'Enter')
  const line = await bob.waitForSelector('#chat li:has-text("good luck, bob")')
  t.equal(await line.$eval('b', (from) => from.textContent), 'alice', 'chat reaches the other player, with who said it')
  await snap(t, bob, 'demo-1-lobby')

  const { red, yellow } = await matched(alice, bob)
  t.equal(await yellow.getAttribute('#game', 'data-you'), 'yellow', 'one red, one yellow')
  await alice.waitForSelector('#players li[data-user="bob"][data-busy="true"]')
  t.match(await alice.textContent('#players li[data-user="bob"]'), /in a game/, 'the Online list shows who is in a game')
  t.equal(await alice.locator('#players button.challenge').count(), 0, 'and offers no Challenge button for them')
  const fits = await layout(red)
  t.ok(fits.boardBottom <= fits.viewportHeight, `at 1280×650 the whole board is in view (bottom row ends at ${fits.boardBottom} of ${fits.viewportHeight} px)`)
  t.equal(fits.overflowX, 0, 'nothing overflows sideways')
  t.equal(await red.isVisible('#leave'), false, 'a match in play is left by resigning, not by a silent way out')

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
  await snap(t, red, 'demo-2-playing-1280x650')

  await yellow.reload()
  await yellow.waitForSelector('#game-status[data-state="open"]')
  await yellow.waitForSelector('#game[data-you="yellow"][data-moves="4"][data-status="playing"]')
  t.equal(await yellow.getAttribute('#board .cell[data-row="5"][data-col="4"]', 'data-disc'), 'yellow', 'after the reload: the same match, the same board')
  await yellow.waitForSelector('#lobby-status[data-state="open"]')
  await red.waitForSelector('#game:not([data-away])')
  await snap(t, yellow, 'demo-3-after-reload')

  await play(red, 3)
  await play(yellow, 4)
  await play(red, 3)
  await red.waitForSelector('#game[data-result="win"]')
  await yellow.waitForSelector('#game[data-result="loss"]')
  t.match(await red.textContent('#game-info'), /You win! \(four in a row\)/, 'red is told it won with four in a row')
  t.equal(await red.locator('#board .cell.winning').count(), 4, 'the winning four are marked')
  await red.waitForSelector('#players li[data-user="alice"]:not([data-busy])')
  t.equal(await red.textContent('#notice'), '', 'no notice about the match outlives it')
  await red.locator('#game').screenshot({ path: join(ARTIFACTS, 'connect-four-board.png') })
  await snap(t, yellow, 'demo-4-game-over')

  await yellow.click('#rematch')
  await red.waitForSelector('#challenges .offer[data-rematch="true"]')
  t.match(await red.textContent('#challenges .offer'), /wants a rematch/, 'the winner is offered a rematch')
  await snap(t, red, 'demo-5-rematch-offer')
  const firstMatch = await red.getAttribute('#game', 'data-match')
  await red.click('#challenges .offer button.accept')
  await Promise.all([red, yellow].map((page) => page.waitForSelector(`#game[data-status="playing"][data-moves="0"]:not([data-match="${firstMatch}"])`)))
  t.pass('the rematch is a fresh match for both')
  await red.click('#resign')
  await yellow.waitForSelector('#game[data-result="win"]')

  await yellow.click('#leave')
  await yellow.waitForSelector('#game', { state: 'hidden' })
  t.same([await yellow.getAttribute('#game-status', 'data-state'), await yellow.textContent('#game-status')], ['idle', 'Game: not in a match'], 'back in the lobby, the game pill is grey and says so, not red like an error')
  await snap(t, yellow, 'demo-6-back-in-lobby')

  t.same([...a.failed, ...b.failed], [], 'no request of the page failed')
  const icon = await alice.evaluate(async () => {
    const href = document.querySelector<HTMLLinkElement>('link[rel~="icon"]')?.href
    if (!href) return 'no icon declared'
    const image = new Image()
    image.src = href
    await image.decode()
    return `${image.naturalWidth}x${image.naturalHeight}`
  })
  t.match(icon, /^[1-9]\d*x[1-9]\d*$/, `the page has a favicon that loads, so the browser asks for no /favicon.ico (${icon})`)
  t.notOk(logs.some((line) => /eyJ[\w-]+\.eyJ/.test(line)), 'no token appears in any log line')
  const demoRequests = logs.filter((line) => /"url":"\/(demo\/|\?|")/.test(line) || /"url":"\/"/.test(line))
  t.same(demoRequests, [], 'the page\'s own files are not request-logged')
  t.ok(logs.some((line) => line.includes('demo token issued')), 'who got a demo token is still logged')
})

t.test('a tab closed mid-game and opened again rejoins its match; a tab replaced by another says so and stops', { skip: !existsSync(CHROMIUM) && 'no chromium' }, async (t) => {
  const { open } = await demoInChromium(t)
  const phone = { width: 390, height: 844 }
  const a = await open(phone)
  const b = await open()
  const carol = await open()
  await joinLobby(a.page, 'alice')
  await joinLobby(b.page, 'bob')
  await joinLobby(carol.page, 'carol')
  const narrow = await layout(a.page)
  t.equal(narrow.overflowX, 0, 'at 390 px wide the lobby does not overflow sideways')
  await snap(t, a.page, 'demo-7-lobby-390')

  const { red, yellow } = await matched(a.page, b.page)
  await red.click('#board .column[data-col="0"]')
  await yellow.waitForSelector('#game[data-moves="1"]')
  const inGame = await layout(a.page)
  t.equal(inGame.overflowX, 0, 'at 390 px wide the game does not overflow sideways')
  t.ok(inGame.boardBottom <= inGame.viewportHeight, 'and the whole board is in view')
  await snap(t, a.page, 'demo-8-game-390')
  await carol.page.waitForSelector('#players li[data-user="alice"][data-busy="true"]')
  t.equal(await carol.page.locator('#players li[data-user="alice"] button.challenge').count(), 0, 'a third player cannot challenge alice in her match')

  // alice closes her tab: bob sees the countdown
  await a.page.close()
  await b.page.waitForSelector('#game[data-away="alice"]')
  t.match(await b.page.textContent('#game-info'), /alice left the game\. They lose in \d+ s unless they come back\./, 'the opponent sees the forfeit countdown')
  await snap(t, b.page, 'demo-9-opponent-away')

  // and opens the URL again in a new tab: a fresh page that knows nothing, until she gives her name
  const reopened = await open(phone, a.context)
  t.equal(await reopened.page.isVisible('#join'), true, 'a reopened tab starts at the name form')
  await joinLobby(reopened.page, 'alice')
  await reopened.page.waitForSelector('#game[data-status="playing"][data-moves="1"]')
  t.equal(await reopened.page.getAttribute('#board .cell[data-row="5"][data-col="0"]', 'data-disc'), 'red', 'the lobby sent her back to her match, the board as it was')
  await b.page.waitForSelector('#game:not([data-away])')
  t.notMatch(await b.page.textContent('#game-info'), /left the game/, 'the opponent sees her back and the countdown stops')
  await snap(t, reopened.page, 'demo-10-rejoined-390')

  // a second tab of alice's in the same browser takes over; the first says so and stops
  const second = await open(phone, a.context)
  await joinLobby(second.page, 'alice')
  await second.page.waitForSelector('#game[data-status="playing"][data-moves="1"]')
  const old = reopened.page
  await old.waitForSelector('#replaced', { state: 'visible' })
  t.match(await old.textContent('#replaced'), /open in another tab/, 'the replaced tab says it was opened in another tab')
  await old.waitForSelector('#lobby-status[data-state="closed"]')
  await old.waitForSelector('#game-status[data-state="closed"]')
  t.same([await old.textContent('#lobby-status'), await old.textContent('#game-status')], ['Lobby: opened in another tab', 'Game: opened in another tab'], 'both pills say why')
  t.equal(await old.evaluate(() => document.querySelector('main')?.inert), true, 'its inputs take no more clicks or keys')
  await snap(t, old, 'demo-11-replaced-tab-390')

  await second.page.click('#resign')
  await b.page.waitForSelector('#game[data-result="win"]')
  t.pass('the tab that took over plays on: its resignation reaches the opponent')
})

t.test('what the demo refuses from a browser', { skip: !existsSync(CHROMIUM) && 'no chromium' }, async (t) => {
  const { open } = await demoInChromium(t)
  const { page } = await open()
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
