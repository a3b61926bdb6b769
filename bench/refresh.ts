/**
 * Token refresh on live sockets (issue 14 item 2, PROTOCOL.md §5d): N
 * clients (gatehouse-client in Node, over `ws`) hold ES256 tokens of
 * BENCH_REFRESH_TOKEN_SEC seconds from a local JWKS server and refresh them
 * every BENCH_REFRESH_EVERY_SEC seconds for BENCH_REFRESH_SECONDS, while each
 * client and the backend (the SDK) send each other one numbered message a
 * second. The endpoint has `enforceExpiry`, so a refresh that fails shows as
 * a 4401. Counted: closes (client side, backend `onClose`), lost messages
 * both ways (gaps, and what never arrived after a final drain), refreshes,
 * JWKS fetches. The targets are counts (0 closes, 0 lost), not speeds, so
 * there is no baseline side to compare with: the run's own figures are the
 * result. Defaults are the full size (1,000 clients, 30-second tokens
 * refreshed every 25 s, 5 minutes); the environment variables shrink it.
 *
 *   npm run bench:refresh
 *   BENCH_REFRESH_CLIENTS=200 BENCH_REFRESH_SECONDS=60 npm run bench:refresh
 */
import { createServer, type Server } from 'node:http'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import os from 'node:os'
import { exportJWK, generateKeyPair, SignJWT } from 'jose'
import { pino } from 'pino'
import { WebSocket as NodeWebSocket } from 'ws'
import { createGateway } from '../src/index.js'
import { GatehouseBackend } from '../src/sdk/index.js'
import { GatehouseClient } from '../src/client/index.js'
import { machineConditions } from './conditions.js'

const num = (name: string, def: number): number => {
  const value = Number(process.env[name] ?? def)
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number; got ${process.env[name]}`)
  return value
}

const CLIENTS = num('BENCH_REFRESH_CLIENTS', 1000)
const SECONDS = num('BENCH_REFRESH_SECONDS', 300)
const TOKEN_SEC = num('BENCH_REFRESH_TOKEN_SEC', 30)
const EVERY_SEC = num('BENCH_REFRESH_EVERY_SEC', 25)
/** Clients opened at once while connecting, so the start is not a handshake storm. */
const LANES = 50
const ISSUER = 'https://auth.bench'
const AUDIENCE = 'game'
const BACKEND_TOKEN = 'bench-refresh-backend-token'
const OUT = process.env.BENCH_REFRESH_OUT ?? 'bench/refresh-results'

interface ClientTally {
  client: GatehouseClient
  sent: number
  /** Highest number received from the backend, and gaps seen. */
  received: number
  gaps: number
  refreshes: number
  closes: Record<string, number>
}

async function jwksServer (): Promise<{ url: string, fetches: () => number, sign: (user: string) => Promise<string>, server: Server }> {
  const { publicKey, privateKey } = await generateKeyPair('ES256')
  const jwk = { ...(await exportJWK(publicKey)), kid: 'bench-1', alg: 'ES256', use: 'sig' }
  let fetches = 0
  const server = createServer((_request, response) => {
    fetches++
    response.writeHead(200, { 'content-type': 'application/json' })
    response.end(JSON.stringify({ keys: [jwk] }))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  return {
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    fetches: () => fetches,
    server,
    sign: async (user) => await new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', kid: 'bench-1' })
      .setSubject(user).setIssuer(ISSUER).setAudience(AUDIENCE)
      .setIssuedAt().setExpirationTime(Math.floor(Date.now() / 1000) + TOKEN_SEC)
      .sign(privateKey)
  }
}

async function main (): Promise<void> {
  const startedAt = Date.now()
  const loadBefore = os.loadavg()
  const jwks = await jwksServer()
  const log = pino({ level: 'warn' })

  // the backend: counts what it gets, and sends every user one numbered message a second
  const fromClients = new Map<string, { last: number, gaps: number }>()
  const backendTally = { opens: 0, closes: 0, refreshes: 0, closeCodes: {} as Record<string, number> }
  const backend = new GatehouseBackend({ token: BACKEND_TOKEN, logger: log }, {
    onOpen: (user) => { backendTally.opens++; fromClients.set(user, fromClients.get(user) ?? { last: 0, gaps: 0 }) },
    onRefresh: () => { backendTally.refreshes++ },
    onClose: (_user, code) => {
      backendTally.closes++
      backendTally.closeCodes[code] = (backendTally.closeCodes[code] ?? 0) + 1
    },
    onMessage: (user, data) => {
      const tally = fromClients.get(user)
      if (tally === undefined || typeof data !== 'number') return
      if (data !== tally.last + 1) tally.gaps += Math.max(0, data - tally.last - 1)
      tally.last = Math.max(tally.last, data)
    }
  })
  const { url: backendUrl } = await backend.listen()

  const gateway = await createGateway({
    server: { host: '127.0.0.1', port: 0 },
    auth: { jwksUrl: jwks.url, algorithms: ['ES256'], issuer: ISSUER, audience: AUDIENCE, tokenSources: ['subprotocol'] },
    endpoints: [{
      name: 'game',
      path: '/game/:matchId',
      enforceExpiry: true,
      backend: { url: backendUrl, token: BACKEND_TOKEN, acks: true, refresh: true }
    }],
    limits: { maxConnections: CLIENTS * 3 },
    log: { level: 'warn' }
  })
  await gateway.listen({ host: '127.0.0.1', port: 0 })
  const { port } = gateway.server.address() as { port: number }
  await new Promise<void>((resolve) => backend.once('synced', () => resolve()))

  const tallies: ClientTally[] = []
  const refreshAheadMs = (TOKEN_SEC - EVERY_SEC) * 1000
  for (let i = 0; i < CLIENTS; i += LANES) {
    const opening: Array<Promise<void>> = []
    for (let j = i; j < Math.min(CLIENTS, i + LANES); j++) {
      const user = `p${j}`
      const client = new GatehouseClient(`ws://127.0.0.1:${port}/game/m${j % 100}`, {
        token: async () => await jwks.sign(user),
        refreshAheadMs,
        WebSocket: NodeWebSocket as unknown as typeof WebSocket
      })
      const tally: ClientTally = { client, sent: 0, received: 0, gaps: 0, refreshes: 0, closes: {} }
      client.on('message', ({ data }) => {
        const n = Number(data)
        if (n !== tally.received + 1) tally.gaps += Math.max(0, n - tally.received - 1)
        tally.received = Math.max(tally.received, n)
      })
      client.on('refreshed', () => { tally.refreshes++ })
      client.on('closed', ({ code }) => { tally.closes[code] = (tally.closes[code] ?? 0) + 1 })
      tallies.push(tally)
      opening.push(new Promise((resolve) => client.on('open', () => resolve())))
    }
    await Promise.all(opening)
  }
  const connectedAt = Date.now()
  const fetchesAfterConnect = jwks.fetches()
  console.log(`${CLIENTS} clients connected in ${connectedAt - startedAt} ms; running ${SECONDS} s`)

  // one message a second each way per client, spread over the second
  const sentTo = new Map<string, number>()
  const tick = setInterval(() => {
    for (const [j, tally] of tallies.entries()) {
      setTimeout(() => {
        if (tally.client.state === 'open') tally.client.send(String(++tally.sent))
        const user = `p${j}`
        const n = (sentTo.get(user) ?? 0) + 1
        if (backend.send(user, String(n)) === 1) sentTo.set(user, n)
      }, (j / tallies.length) * 1000)
    }
  }, 1000)
  await new Promise((resolve) => setTimeout(resolve, SECONDS * 1000))
  clearInterval(tick)
  // let the last second's messages land
  await new Promise((resolve) => setTimeout(resolve, 3000))

  const clientCloses: Record<string, number> = {}
  let toBackendLost = 0
  let toClientsLost = 0
  let clientRefreshes = 0
  for (const [j, tally] of tallies.entries()) {
    for (const [code, n] of Object.entries(tally.closes)) clientCloses[code] = (clientCloses[code] ?? 0) + n
    const seen = fromClients.get(`p${j}`)
    toBackendLost += (seen?.gaps ?? 0) + Math.max(0, tally.sent - (seen?.last ?? 0))
    toClientsLost += tally.gaps + Math.max(0, (sentTo.get(`p${j}`) ?? 0) - tally.received)
    clientRefreshes += tally.refreshes
  }
  const result = {
    figures: {
      clients: CLIENTS,
      seconds: SECONDS,
      tokenSec: TOKEN_SEC,
      refreshEverySec: EVERY_SEC,
      clientRefreshes,
      backendRefreshEvents: backendTally.refreshes,
      clientCloses,
      backendOnClose: backendTally.closes,
      backendOpens: backendTally.opens,
      messagesToBackend: tallies.reduce((sum, t) => sum + t.sent, 0),
      messagesToBackendLost: toBackendLost,
      messagesToClients: [...sentTo.values()].reduce((x, y) => x + y, 0),
      messagesToClientsLost: toClientsLost,
      jwksFetches: jwks.fetches(),
      jwksFetchesWhileConnecting: fetchesAfterConnect,
      connectMs: connectedAt - startedAt
    },
    conditions: {
      ...machineConditions(startedAt),
      loadavgBefore: loadBefore.map((x) => Math.round(x * 100) / 100),
      loadavgAfter: os.loadavg().map((x) => Math.round(x * 100) / 100),
      setup: 'one process: gateway (createGateway), SDK backend, JWKS server (ES256, one key) and all clients (gatehouse-client over ws), on loopback',
      note: process.env.BENCH_NOTE ?? ''
    }
  }
  for (const tally of tallies) tally.client.close()
  await gateway.close()
  await backend.stop()
  jwks.server.close()

  writeFileSync(`${OUT}.json`, `${JSON.stringify(result, null, 2)}\n`)
  const f = result.figures
  const md = [
    '# Token refresh on live sockets (bench/refresh.ts)',
    '',
    `${f.clients} clients, ${f.tokenSec}-second tokens refreshed every ${f.refreshEverySec} s, for ${f.seconds} s; one message a second each way per client.`,
    '',
    '| figure | value | target |',
    '|---|---|---|',
    `| refreshes (client) / refresh events (backend) | ${f.clientRefreshes} / ${f.backendRefreshEvents} | about clients × seconds / ${f.refreshEverySec} |`,
    `| client closes | ${JSON.stringify(f.clientCloses)} | {} |`,
    `| backend onClose | ${f.backendOnClose} | 0 |`,
    `| backend onOpen | ${f.backendOpens} | ${f.clients} |`,
    `| messages to backend, lost | ${f.messagesToBackend}, ${f.messagesToBackendLost} | 0 lost |`,
    `| messages to clients, lost | ${f.messagesToClients}, ${f.messagesToClientsLost} | 0 lost |`,
    `| JWKS fetches (while connecting) | ${f.jwksFetches} (${f.jwksFetchesWhileConnecting}) | a few: cached, refreshed every auth.jwksRefreshMs |`,
    '',
    `Conditions: ${JSON.stringify(result.conditions)}`,
    ''
  ].join('\n')
  writeFileSync(`${OUT}.md`, md)
  console.log(md)
}

main().catch((err: unknown) => {
  console.error(err)
  process.exit(1)
})
