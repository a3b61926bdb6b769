/**
 * Everything the demo runs: the example lobby and game services, the
 * gateway built from `gateway.config.json`, and the demo page with its token
 * route, in one process. The gateway is the production one, unchanged; the
 * demo only adds routes to it before it listens.
 *
 * When the config's game endpoint is a pool (`backend.urls`, as in
 * examples/demo/gateway.pool.json), each member is a game instance in its own
 * process (examples/game/main.ts), all sharing one directory of match state,
 * so a match survives the death of the instance holding it (docs/pools.md).
 */
import { fork, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import { pino, type DestinationStream } from 'pino'
import { createGateway, loadConfigFile, type EndpointConfig, type GatewayConfig } from '../../src/index.js'
import { backendMembers } from '../../src/config/load.js'
import { startLobby } from '../lobby/index.js'
import { startGame, type RunningGame } from '../game/index.js'
import { demoRoutes } from './demo-routes.js'
import { demoTokenIssuer } from './demo-token.js'

/** Secrets the shipped config reads from the environment; the demo makes up any that are unset. */
const DEMO_SECRETS = ['JWT_SECRET', 'LOBBY_BACKEND_TOKEN', 'GAME_BACKEND_TOKEN'] as const

export interface DemoOptions {
  /** @default 'gateway.config.json' */
  configFile?: string
  /** Listen on free ports (tests) instead of the ports in the config. @default false */
  ephemeralPorts?: boolean
  /** @default process.env */
  env?: NodeJS.ProcessEnv
  /** Where every part logs. @default stdout */
  logStream?: DestinationStream
  /** How long a player who dropped mid-game has to come back. @default 30000 */
  gameGraceMs?: number
}

/** A game instance of a pooled game endpoint, in its own process. */
export interface GameInstance {
  /** The member id in the gateway's config (hello.member, metrics). */
  id: string
  url: string
  process: ChildProcess
}

export interface RunningDemo {
  app: FastifyInstance
  /** The page to open. */
  url: string
  /** Secrets the demo generated because the environment did not set them. */
  generated: string[]
  /** With a pooled game endpoint, its instances (else empty: the game runs in this process). */
  gameInstances: GameInstance[]
  /** Where pooled instances keep match state (GAME_STORE_DIR, else a temporary directory removed on close). */
  matchStoreDir?: string
  close (): Promise<void>
}

const GAME_MAIN = fileURLToPath(new URL('../game/main.js', import.meta.url))

export async function startDemo (options: DemoOptions = {}): Promise<RunningDemo> {
  const env = { ...(options.env ?? process.env) }
  const generated = DEMO_SECRETS.filter((name) => env[name] === undefined)
  for (const name of generated) env[name] = randomBytes(32).toString('hex')
  const config = loadConfigFile(options.configFile ?? 'gateway.config.json', env)
  const tokens = demoTokenIssuer(config.auth)
  const log = pino({ level: config.log.level }, options.logStream ?? pino.destination(1))

  const lobbyEndpoint = endpointNamed(config, 'lobby')
  const gameEndpoint = endpointNamed(config, 'game')
  // a config without backend tokens is taken at its word: its gateway presents none, so the services cannot ask for one
  const lobby = await startLobby({ ...listenAt(lobbyEndpoint, options), ...credentials(lobbyEndpoint), logger: log.child({ service: 'lobby' }), linkGraceMs: config.queue.graceMs })
  const onMatchOver = (matchId: string): void => lobby.lobby.matchOver(matchId)
  const pooled = gameEndpoint.backend.urls !== undefined
  const madeStoreDir = pooled && !env.GAME_STORE_DIR
  const matchStoreDir = pooled ? (env.GAME_STORE_DIR || mkdtempSync(join(os.tmpdir(), 'gatehouse-demo-matches-'))) : undefined
  const instances: GameInstance[] = []
  let game: RunningGame | undefined
  try {
    if (matchStoreDir === undefined) {
      game = await startGame({ ...listenAt(gameEndpoint, options), ...credentials(gameEndpoint), logger: log.child({ service: 'game' }), linkGraceMs: config.queue.graceMs, graceMs: options.gameGraceMs, onMatchOver })
    } else {
      const settings = { store: matchStoreDir, token: gameEndpoint.backend.token, linkGraceMs: config.queue.graceMs, graceMs: options.gameGraceMs, logLevel: config.log.level, logStream: options.logStream, onMatchOver }
      for (const member of backendMembers(gameEndpoint.backend)) {
        instances.push(await startGameInstance(member.id, listenAtUrl(member.url, options), settings))
      }
    }
  } catch (err) {
    await Promise.all([lobby.stop(), game?.stop(), ...instances.map(stopInstance)])
    if (madeStoreDir && matchStoreDir) rmSync(matchStoreDir, { recursive: true, force: true })
    throw err
  }

  // the same config, pointed at the ports the services really got
  const gatewayConfig = structuredClone(config) as GatewayConfig
  for (const endpoint of gatewayConfig.endpoints) {
    if (endpoint.name === 'lobby') endpoint.backend.url = lobby.url
    if (endpoint.name === 'game' && game) endpoint.backend.url = game.url
    if (endpoint.name === 'game' && pooled) {
      const weights = new Map(backendMembers(endpoint.backend).map((m) => [m.id, m.weight]))
      endpoint.backend.urls = instances.map((i) => ({ id: i.id, url: i.url, weight: weights.get(i.id) ?? 1 }))
    }
  }
  const app = await createGateway(gatewayConfig, { env, logStream: options.logStream })
  // the page's files are fetched on every load: their request lines would drown the gateway's log (warnings still show)
  await app.register(demoRoutes, { tokens, logLevel: 'warn' })
  const { host } = config.server
  await app.listen({ host, port: options.ephemeralPorts === true ? 0 : config.server.port })
  const { port } = app.server.address() as { port: number }

  return {
    app,
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}/`,
    generated,
    gameInstances: instances,
    matchStoreDir,
    async close () {
      await app.close()
      await Promise.all([lobby.stop(), game?.stop(), ...instances.map(stopInstance)])
      if (madeStoreDir && matchStoreDir) rmSync(matchStoreDir, { recursive: true, force: true })
    }
  }
}

interface InstanceSettings {
  store: string
  token?: string
  linkGraceMs: number
  graceMs?: number
  logLevel: string
  logStream?: DestinationStream
  onMatchOver (matchId: string): void
}

/** Forks examples/game/main.js listening at `at`; resolves with its real URL once it says it listens. */
async function startGameInstance (id: string, at: { host: string, port: number }, settings: InstanceSettings): Promise<GameInstance> {
  const child = fork(GAME_MAIN, [], {
    env: {
      ...process.env,
      GAME_HOST: at.host,
      GAME_PORT: String(at.port),
      GAME_STORE_DIR: settings.store,
      GAME_BACKEND_TOKEN: settings.token ?? '',
      GAME_LINK_GRACE_MS: String(settings.linkGraceMs),
      ...(settings.graceMs === undefined ? {} : { GAME_GRACE_MS: String(settings.graceMs) }),
      LOG_LEVEL: settings.logLevel
    },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc']
  })
  // its log lines join the demo's
  let lastError = ''
  child.stdout?.on('data', (chunk: Buffer) => { settings.logStream ? settings.logStream.write(chunk.toString()) : process.stdout.write(chunk) })
  child.stderr?.on('data', (chunk: Buffer) => {
    lastError = chunk.toString().slice(-2000)
    process.stderr.write(chunk)
  })
  const port = await new Promise<number>((resolve, reject) => {
    child.on('message', (message: { type?: string, port?: number, matchId?: string }) => {
      if (message.type === 'listening' && typeof message.port === 'number') resolve(message.port)
      if (message.type === 'matchOver' && typeof message.matchId === 'string') settings.onMatchOver(message.matchId)
    })
    child.once('exit', (code, signal) => reject(new Error(`game instance ${id} exited (${signal ?? code}) before listening: ${lastError.trim()}`)))
  })
  const host = at.host.includes(':') ? `[${at.host}]` : at.host
  return { id, url: `ws://${host}:${port}`, process: child }
}

/** SIGTERM (a clean stop), SIGKILL if it has not exited within 5 s; an instance already dead (a demo of its death) is left be. */
async function stopInstance (instance: GameInstance): Promise<void> {
  const child = instance.process
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
  await exited
  clearTimeout(timer)
}

function endpointNamed (config: Readonly<GatewayConfig>, name: string): Readonly<EndpointConfig> {
  const endpoint = config.endpoints.find((e) => e.name === name)
  if (!endpoint) throw new Error(`the demo needs an endpoint named "${name}" in the gateway config`)
  return endpoint
}

/** What a service asks of the gateway's link: the endpoint's `backend.token`, or (with none configured) nothing, said explicitly. */
function credentials (endpoint: Readonly<EndpointConfig>): { token?: string, allowUnauthenticated: boolean } {
  const { token } = endpoint.backend
  return { token, allowUnauthenticated: token === undefined }
}

/** A service listens where its endpoint's (first) backend URL points (or on a free port). */
function listenAt (endpoint: Readonly<EndpointConfig>, options: DemoOptions): { host: string, port: number } {
  return listenAtUrl(backendMembers(endpoint.backend)[0].url, options)
}

function listenAtUrl (backendUrl: string, options: DemoOptions): { host: string, port: number } {
  const url = new URL(backendUrl)
  return { host: url.hostname.replace(/^\[|\]$/g, ''), port: options.ephemeralPorts === true ? 0 : Number(url.port || 80) }
}
