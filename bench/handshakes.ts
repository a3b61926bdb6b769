/**
 * Handshakes per second by where the gateway's verification key comes from
 * (issue 14): an HS256 secret, an RS256 public key in the config, and the
 * same RS256 key served as a JWKS by an HTTP server on loopback (fetched at
 * start, then cached). Every handshake carries its own token and
 * `auth.verifyCacheSize` is 0, so each one is verified. Fresh gateway
 * processes for every run, sides interleaved; the JWKS fetches each run made
 * are read from the gateway's `gatehouse_jwks_fetches_total`.
 *
 * With BENCH_GATEHOUSE_B=/other/checkout/dist/src/index.js the sides are
 * instead the HS256 secret on this build and on that one (an A/B of a change
 * to the handshake path), with the gateway's CPU per handshake.
 *
 *   npm run bench:handshakes            (BENCH_HANDSHAKES=2000 BENCH_RUNS=5)
 */
import { generateKeyPairSync } from 'node:crypto'
import { loadavg } from 'node:os'
import { createServer, type Server } from 'node:http'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { createSigner } from 'fast-jwt'
import WebSocket from 'ws'
import { ECHO_BACKEND, GATEWAY, NODE_FLAGS, gatewayConfig } from './contenders.js'
import { LINK_PATH, PATH } from './endpoints.js'
import { forkChild, type Child } from './ipc.js'
import { inLanes } from './load/lanes.js'
import { machineConditions } from './conditions.js'
import { cpuMs } from './procfs.js'
import { median } from './stats.js'
import { BENCH_AUDIENCE, BENCH_ISSUER, signToken } from './tokens.js'

const KEY_SIDES = ['HS256 secret', 'RS256 public key', 'RS256 JWKS'] as const
const AB_SIDES = ['HS256 secret', 'HS256 secret, B'] as const
type Side = typeof KEY_SIDES[number] | typeof AB_SIDES[number]
const buildB = process.env.BENCH_GATEHOUSE_B
const SIDES: readonly Side[] = buildB === undefined ? KEY_SIDES : AB_SIDES

/** `cpuUsPerHandshake`: the gateway process's user + system CPU over the window (per-thread schedstat) ÷ handshakes. */
interface Run { perSecond: number, failed: number, jwksFetches: number, cpuUsPerHandshake: number }

const count = Number(process.env.BENCH_HANDSHAKES ?? 2000)
const runs = Number(process.env.BENCH_RUNS ?? 5)
const concurrency = 64
const startedAt = Date.now()

const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
const publicPem = publicKey.export({ type: 'spki', format: 'pem' }) as string
const jwk = { ...publicKey.export({ format: 'jwk' }), kid: 'bench-1', alg: 'RS256', use: 'sig' }
const signRs = createSigner({ key: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, algorithm: 'RS256', kid: 'bench-1' })

async function jwksServer (): Promise<{ server: Server, url: string }> {
  const server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] })))
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return { server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}/.well-known/jwks.json` }
}

function authFor (side: Side, jwksUrl: string): Record<string, unknown> {
  const common = { issuer: BENCH_ISSUER, audience: BENCH_AUDIENCE, tokenSources: ['header'], verifyCacheSize: 0 }
  if (side === 'HS256 secret' || side === 'HS256 secret, B') return { ...(gatewayConfig('ws://unused').auth as object), ...common }
  if (side === 'RS256 public key') return { ...common, publicKey: publicPem, algorithms: ['RS256'] }
  return { ...common, jwksUrl, algorithms: ['RS256'] }
}

/** Tokens for every handshake of a run, signed before the clock starts (RS256 signing is the load generator's cost, not the gateway's). */
function tokens (side: Side, run: number): string[] {
  const now = Math.floor(Date.now() / 1000)
  return Array.from({ length: count }, (_, i) => side === 'HS256 secret' || side === 'HS256 secret, B'
    ? signToken(`hs-${run}-${i}`)
    : signRs({ sub: `rs-${run}-${i}`, iss: BENCH_ISSUER, aud: BENCH_AUDIENCE, iat: now, exp: now + 7200 }))
}

async function open (url: string, token: string): Promise<WebSocket> {
  const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}` }, perMessageDeflate: false })
  await new Promise<void>((resolve, reject) => {
    ws.once('open', resolve)
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)))
    ws.once('error', reject)
  })
  return ws
}

async function runOnce (side: Side, run: number, backendPort: number, jwksUrl: string): Promise<Run> {
  const base = gatewayConfig(`ws://127.0.0.1:${backendPort}${LINK_PATH}`)
  const config = { ...base, auth: authFor(side, jwksUrl) }
  const args = side === 'HS256 secret, B' ? [JSON.stringify(config), buildB as string] : [JSON.stringify(config)]
  const { child, ready } = await forkChild<{ port: number }>(`gateway (${side})`, GATEWAY, { execArgv: NODE_FLAGS, args })
  try {
    await child.call('ready')
    const url = `ws://127.0.0.1:${ready.port}${PATH}`
    const signed = tokens(side, run)
    const sockets: WebSocket[] = []
    const pid = child.process.pid as number
    const cpuBefore = cpuMs([pid])
    const started = performance.now()
    const { failed } = await inLanes(count, concurrency, async (i) => { sockets.push(await open(url, signed[i] as string)) })
    const elapsed = performance.now() - started
    const cpu = cpuMs([pid]) - cpuBefore
    for (const ws of sockets) ws.terminate()
    const metrics = await (await fetch(`http://127.0.0.1:${ready.port}/metrics`)).text()
    const jwksFetches = [...metrics.matchAll(/^gatehouse_jwks_fetches_total\{[^}]*\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0)
    return { perSecond: (count - failed) / (elapsed / 1000), failed, jwksFetches, cpuUsPerHandshake: cpu * 1000 / Math.max(1, count - failed) }
  } finally {
    await child.stop()
  }
}

const { child: backend, ready } = await forkChild<{ port: number }>('echo backend', ECHO_BACKEND, { execArgv: NODE_FLAGS })
const jwks = await jwksServer()
const results = new Map<Side, Run[]>(SIDES.map((s) => [s, []]))
try {
  for (let run = 0; run < runs; run++) {
    // interleaved, in a rotating order, so drift on the machine falls on every side alike
    for (const [i] of SIDES.entries()) {
      const side = SIDES[(i + run) % SIDES.length] as Side
      const result = await runOnce(side, run, ready.port, jwks.url)
      results.get(side)?.push(result)
      console.log(`run ${run + 1}/${runs} ${side}: ${result.perSecond.toFixed(0)} handshakes/s, gateway CPU ${result.cpuUsPerHandshake.toFixed(0)} µs per handshake, ${result.failed} failed, ${result.jwksFetches} JWKS fetches`)
    }
  }
} finally {
  jwks.server.close()
  await (backend as Child).stop()
}

const medianOf = (side: Side): number => median((results.get(side) ?? []).map((r) => r.perSecond))
const figures = Object.fromEntries(SIDES.map((s) => [s, { medianPerSecond: medianOf(s), runs: results.get(s) }]))
const ratio = (a: Side, b: Side): string => (medianOf(a) / medianOf(b)).toFixed(2)
/** The median of the per-round ratios: each round's sides ran back to back, so drift of the machine between rounds cancels. */
const paired = (a: Side, b: Side): string => {
  const as = results.get(a) ?? []
  const bs = results.get(b) ?? []
  return median(as.map((r, i) => r.perSecond / (bs[i]?.perSecond ?? NaN))).toFixed(2)
}
const conditions = { ...machineConditions(startedAt), loadAverageAtEnd: loadavg().map((l) => l.toFixed(2)).join(' ') }
const cpuOf = (side: Side): number => median((results.get(side) ?? []).map((r) => r.cpuUsPerHandshake))
if (buildB !== undefined) {
  // an A/B prints its figures and leaves the committed results alone
  const a = 'HS256 secret'
  const b = 'HS256 secret, B'
  console.log([
    `A/B, ${count} handshakes per run, ${concurrency} at a time, ${runs} runs per side, interleaved; B = ${buildB}`,
    ...AB_SIDES.map((s) => `${s}: median ${medianOf(s).toFixed(0)} handshakes/s (${(results.get(s) ?? []).map((r) => r.perSecond.toFixed(0)).join(', ')}), gateway CPU ${cpuOf(s).toFixed(0)} µs per handshake (${(results.get(s) ?? []).map((r) => r.cpuUsPerHandshake.toFixed(0)).join(', ')})`),
    `A ÷ B handshakes/s: ${ratio(a, b)}× (per round: ${paired(a, b)}×); CPU per handshake A ÷ B ${(cpuOf(a) / cpuOf(b)).toFixed(2)}×`,
    `Conditions: ${JSON.stringify(conditions)}`
  ].join('\n'))
} else {
  const lines = [
    '# Handshakes per second by key source',
    '',
    `${count} handshakes per run, ${concurrency} at a time, each with its own token, \`auth.verifyCacheSize\` 0 (every token verified); ${runs} runs per side, interleaved, fresh gateway each run. Generated by \`npm run bench:handshakes\`.`,
    '',
    '| side | median handshakes/s | every run | JWKS fetches per run |',
    '|---|---|---|---|',
    ...SIDES.map((s) => `| ${s} | ${medianOf(s).toFixed(0)} | ${(results.get(s) ?? []).map((r) => r.perSecond.toFixed(0)).join(', ')} | ${(results.get(s) ?? []).map((r) => r.jwksFetches).join(', ')} |`),
    '',
    `Ratio of medians (median of the per-round ratios): JWKS ÷ public key **${ratio('RS256 JWKS', 'RS256 public key')}× (${paired('RS256 JWKS', 'RS256 public key')}×)**; JWKS ÷ HS256 ${ratio('RS256 JWKS', 'HS256 secret')}× (${paired('RS256 JWKS', 'HS256 secret')}×); public key ÷ HS256 ${ratio('RS256 public key', 'HS256 secret')}× (${paired('RS256 public key', 'HS256 secret')}×).`,
    '',
    `Conditions: ${JSON.stringify(conditions)}`,
    ''
  ]
  const out = fileURLToPath(new URL('../../bench/handshakes-results.md', import.meta.url))
  writeFileSync(out, lines.join('\n'))
  writeFileSync(out.replace(/\.md$/, '.json'), JSON.stringify({ count, runs, concurrency, figures, conditions }, null, 2) + '\n')
  console.log(lines.join('\n'))
}
