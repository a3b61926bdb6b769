/**
 * Everything the demo runs, in one process: the example lobby and game
 * services, the gateway built from `gateway.config.json`, and the demo page
 * with its token route. The gateway is the production one, unchanged; the
 * demo only adds routes to it before it listens.
 */
import { randomBytes } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { pino, type DestinationStream } from 'pino'
import { createGateway, loadConfigFile, type EndpointConfig, type GatewayConfig } from '../../src/index.js'
import { backendMembers } from '../../src/config/load.js'
import { startLobby } from '../lobby/index.js'
import { startGame } from '../game/index.js'
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

export interface RunningDemo {
  app: FastifyInstance
  /** The page to open. */
  url: string
  /** Secrets the demo generated because the environment did not set them. */
  generated: string[]
  close (): Promise<void>
}

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
  const game = await startGame({ ...listenAt(gameEndpoint, options), ...credentials(gameEndpoint), logger: log.child({ service: 'game' }), linkGraceMs: config.queue.graceMs, graceMs: options.gameGraceMs, onMatchOver: (matchId) => lobby.lobby.matchOver(matchId) })

  // the same config, pointed at the ports the services really got
  const gatewayConfig = structuredClone(config) as GatewayConfig
  for (const endpoint of gatewayConfig.endpoints) {
    if (endpoint.name === 'lobby') endpoint.backend.url = lobby.url
    if (endpoint.name === 'game') endpoint.backend.url = game.url
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
    async close () {
      await app.close()
      await Promise.all([lobby.stop(), game.stop()])
    }
  }
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
  const url = new URL(backendMembers(endpoint.backend)[0].url)
  return { host: url.hostname.replace(/^\[|\]$/g, ''), port: options.ephemeralPorts === true ? 0 : Number(url.port || 80) }
}
