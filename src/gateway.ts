/**
 * The composition root: config → auth → cluster broker → per endpoint
 * (registry, pool of backend links, relay) → routes, wired here and nowhere else. The parts know nothing of each
 * other; they meet through the small interfaces each one declares.
 */
import { hostname } from 'node:os'
import { randomBytes } from 'node:crypto'
import Fastify, { type FastifyInstance, type FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import websocket from '@fastify/websocket'
import type { DestinationStream } from 'pino'
import { parseConfig, endpointLimits, isValidated, backendMembers } from './config/load.js'
import type { GatewayConfig } from './config/schema.js'
import { registerAuthenticator } from './auth/authenticator.js'
import { selectSubprotocol } from './auth/token-sources.js'
import { BackendLink } from './backend-link/link.js'
import { BackendPool } from './pool/pool.js'
import { PoolLeases } from './pool/leases.js'
import { EndpointRelay } from './relay/relay.js'
import { ClientSide } from './relay/client-side.js'
import { ActionDispatch } from './relay/action-dispatch.js'
import { SessionRegistry } from './sessions/registry.js'
import { GatewayMetrics } from './metrics.js'
import type { Broker, LocalNode } from './cluster/broker.js'
import { MemoryBroker } from './cluster/memory-broker.js'
import { RedisBroker } from './cluster/redis-broker.js'
import { Admissions } from './cluster/admission.js'
import { loggerOptions } from './logger.js'
import { listenOnConfiguredAddress } from './listen-address.js'
import { CloseCodes } from '../protocol/index.js'
import { endpointRoutes, type EndpointRoute } from '../routes/endpoints.js'
import { healthRoutes } from '../routes/health.js'
import { adminRoutes } from '../routes/admin.js'
import { handleNotFound } from '../routes/not-found.js'
import { clientErrorHandler, endPipelinedUpgrades, frameworkErrors, refuseStrayUpgrades } from '../routes/upgrades.js'

/** Frames one client message may be split into; past it ws closes with 1008 (protocol/PROTOCOL.md §7). */
const MAX_FRAGMENTS = 256

export interface GatewayOptions {
  /** Where JSON log lines go (default: stdout). */
  logStream?: DestinationStream
  /** For `${NAME}` substitution when `config` is not yet validated (default: process.env). */
  env?: NodeJS.ProcessEnv
  /** This process in the cluster and in `hello` (default: `server.nodeId`, else generated). */
  nodeId?: string
}

/**
 * Builds a gateway from a config object: one from `parseConfig` or
 * `loadConfigFile` as it is, anything else validated here first.
 * `listen()` defaults to `server.host` and `server.port`.
 * Backend links dial when the instance is ready (`listen()` or `ready()`);
 * `close()` drains: clients get 1001, their `close` events reach the backends.
 */
export async function createGateway (input: unknown, options: GatewayOptions = {}): Promise<FastifyInstance> {
  const config: Readonly<GatewayConfig> = isValidated(input) ? input : parseConfig(input, options.env)
  const app = Fastify({ logger: loggerOptions(config.log.level, options.logStream), frameworkErrors, clientErrorHandler })
  listenOnConfiguredAddress(app, config.server)
  await app.register(gatehousePlugin, { config, nodeId: options.nodeId })
  return app
}

export interface GatehousePluginOptions {
  /** As for `createGateway`; `server.host`/`server.port` and `log` are the app's own business here. */
  config: unknown
  /** For `${NAME}` substitution when `config` is not yet validated (default: process.env). */
  env?: NodeJS.ProcessEnv
  /** This process in the cluster and in `hello` (default: `server.nodeId`, else generated). */
  nodeId?: string | undefined
}

/**
 * The gateway as a fastify plugin, for an existing app: its endpoints, health
 * routes and hooks go on that app (no encapsulation), with its server and logger.
 * The app must not register `@fastify/websocket` itself, and should log requests
 * through `requestSerializer` (README, "Embedding in a fastify app").
 */
export const gatehousePlugin: FastifyPluginAsync<GatehousePluginOptions> = fp(registerGateway, { name: 'gatehouse-gateway', fastify: '5.x' })

async function registerGateway (app: FastifyInstance, options: GatehousePluginOptions): Promise<void> {
  const config: Readonly<GatewayConfig> = isValidated(options.config) ? options.config : parseConfig(options.config, options.env)
  const metrics = new GatewayMetrics()
  const nodeId = options.nodeId ?? config.server.nodeId ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`
  let draining = false

  const authenticator = await registerAuthenticator(app, config.auth)
  const { cluster } = config
  const broker: Broker = cluster.redis === undefined
    ? new MemoryBroker(metrics)
    : new RedisBroker({ ...cluster, url: cluster.redis, nodeId, metrics, log: app.log.child({ component: 'cluster' }) })
  const admissions = new Admissions(broker, nodeId, cluster.whenRedisDown)

  const endpoints = config.endpoints.map((endpoint) => {
    const log = app.log.child({ endpoint: endpoint.name })
    const limits = endpointLimits(config, endpoint)
    const registry = new SessionRegistry(endpoint.duplicate)
    const { backend } = endpoint
    const members = backendMembers(backend)
    const pool = new BackendPool({
      endpoint: endpoint.name,
      backend,
      members,
      dial: (member) => new BackendLink({
        endpoint: endpoint.name, nodeId, cluster: broker.cluster, url: member.url, member: member.id, announceMember: backend.urls !== undefined,
        backend, queue: config.queue, metrics, log: backend.urls === undefined ? log : log.child({ member: member.id })
      }),
      maxClientBytes: config.queue.maxClientBytes,
      metrics,
      log
    })
    const relay = new EndpointRelay(
      new ClientSide({ endpoint, limits, registry, sink: pool, cluster: broker, metrics, log, clockToleranceSec: config.auth.clockToleranceSec }),
      new ActionDispatch({ endpoint: endpoint.name, registry, cluster: broker, metrics, log })
    )
    pool.on('actions', (actions) => relay.dispatch(actions))
    pool.on('state', (state) => {
      if (state === 'unavailable') relay.closeAll(CloseCodes.BACKEND_UNAVAILABLE)
    })
    pool.on('overShare', (user) => registry.get(user)?.close(CloseCodes.QUEUE_SHARE_EXCEEDED))
    pool.on('unavailable', (users) => {
      for (const user of users) registry.get(user)?.close(CloseCodes.BACKEND_UNAVAILABLE)
    })
    const route: EndpointRoute = {
      config: endpoint,
      limits,
      registry,
      relay,
      available: () => pool.state !== 'unavailable',
      routable: (identity, params) => pool.routable({ user: identity.user, claims: identity.claims, params }),
      claim: async (identity, params, refresh) => await admissions.claim(endpoint, identity, params, refresh),
      release: (ticket) => admissions.release(ticket, registry.get(ticket.connection.user)?.connection)
    }
    return { route, pool, relay, members }
  })
  const relays = new Map(endpoints.map((e) => [e.route.config.name, e.relay]))
  const relayFor = (endpoint: string): EndpointRelay | undefined => {
    const relay = relays.get(endpoint)
    if (!relay) app.log.warn({ endpoint }, 'another node spoke of an endpoint this node does not serve; nodes of one cluster need the same endpoints')
    return relay
  }
  const node: LocalNode = {
    evict: async (endpoint, user, id, why, params) => {
      admissions.evict(endpoint, user, id, why)
      return await relayFor(endpoint)?.evict(user, id, why, params)
    },
    reportLost: async (endpoint, user, params) => await relayFor(endpoint)?.reportLost(user, params),
    reopen: (endpoint, user, id) => relayFor(endpoint)?.reopen(user, id),
    deliver: (endpoint, actions) => relayFor(endpoint)?.dispatch(actions, true),
    * connections () {
      for (const { relay } of endpoints) yield * relay.registered()
    }
  }

  await app.register(websocket, {
    options: {
      // the largest of the endpoints' limits; each endpoint enforces its own below it
      maxPayload: Math.max(...endpoints.map((e) => e.route.limits.maxPayloadBytes)),
      // ws buffers each fragment as its own Buffer (~130 bytes of overhead even for 1 byte of data)
      maxFragments: MAX_FRAGMENTS,
      perMessageDeflate: false,
      handleProtocols: selectSubprotocol
    },
    errorHandler: (err, socket, request) => {
      // ws has already closed the socket with the right code for protocol errors
      request.log.debug({ err: err.message, code: (err as NodeJS.ErrnoException).code }, 'client socket error')
      if (!(err as NodeJS.ErrnoException).code?.startsWith('WS_ERR_')) socket.terminate()
    },
    preClose: async () => {
      draining = true
      const deadline = Date.now() + config.server.shutdownTimeoutMs
      await Promise.all(endpoints.map((e) => e.relay.shutdown(config.server.shutdownTimeoutMs / 2)))
      await Promise.all(endpoints.map(async ({ pool, route }) => {
        const left = await pool.settle(Math.max(0, deadline - Date.now()))
        if (left > 0) app.log.warn({ endpoint: route.config.name, undelivered: left }, 'shutdown: events not delivered to the backend')
      }))
    }
  })

  refuseStrayUpgrades(app)
  endPipelinedUpgrades(app)
  await app.register(endpointRoutes, {
    endpoints: endpoints.map((e) => e.route),
    authenticator,
    metrics,
    gate: {
      draining: () => draining,
      connections: () => endpoints.reduce((sum, e) => sum + e.relay.connections, 0),
      maxConnections: config.limits.maxConnections
    }
  })
  handleNotFound(app)
  // members join at run time only pools (`backend.urls`), and only with an admin token configured
  let leases: PoolLeases | undefined
  if (config.admin !== undefined) {
    const pools = endpoints.filter((e) => e.route.config.backend.urls !== undefined).map((e) => [e.route.config.name, { pool: e.pool, configured: e.members }] as const)
    leases = new PoolLeases(new Map(pools), config.admin, app.log.child({ component: 'admin' }))
    await app.register(adminRoutes, { token: config.admin.token, leases })
  }
  await app.register(healthRoutes, {
    registry: metrics.registry,
    links: () => Object.fromEntries(endpoints.map((e) => [e.route.config.name, e.pool.state])),
    members: () => Object.fromEntries(endpoints.filter((e) => e.route.config.backend.urls !== undefined).map((e) => [e.route.config.name, e.pool.memberStates()])),
    broker: () => broker.state
  })

  app.addHook('onReady', async () => {
    app.log.info({ nodeId, cluster: broker.cluster, endpoints: endpoints.map((e) => `${e.route.config.path} -> ${e.pool.target}`) }, 'gateway starting')
    // a third of a lease: long enough to join a reachable Redis, short enough to start degraded without one
    await broker.start(node, Math.floor(cluster.presenceTtlMs / 3))
    for (const { pool, relay } of endpoints) {
      pool.start()
      relay.start()
    }
  })
  app.addHook('onClose', async () => {
    leases?.close()
    for (const { pool } of endpoints) pool.close()
    await broker.close()
  })
}
