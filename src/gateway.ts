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
import { DEFAULT_MAX_PER_USER, type GatewayConfig } from './config/schema.js'
import { registerAuthenticator } from './auth/authenticator.js'
import { selectSubprotocol } from './auth/token-sources.js'
import { BackendLink } from './backend-link/link.js'
import { BackendPool } from './pool/pool.js'
import { PoolLeases, type MemberLeases } from './pool/leases.js'
import { ClusterLeases } from './pool/cluster-leases.js'
import { ClusterDirectory } from './pool/cluster-directory.js'
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
  const app = Fastify({ logger: loggerOptions(config.log.level, options.logStream), frameworkErrors, clientErrorHandler, http: slowHeads(config.server.headersTimeoutMs) })
  listenOnConfiguredAddress(app, config.server)
  await app.register(gatehousePlugin, { config, nodeId: options.nodeId })
  return app
}

/**
 * Node checks the head's deadline only every `connectionsCheckingInterval`
 * (30 s by default), so a client trickling a handshake byte by byte would
 * hold its socket for up to 90 s; checked every second here instead.
 */
function slowHeads (headersTimeoutMs: number): { headersTimeout: number, connectionsCheckingInterval: number } {
  return { headersTimeout: headersTimeoutMs, connectionsCheckingInterval: Math.min(1000, headersTimeoutMs) }
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

  const authenticator = await registerAuthenticator(app, config.auth, metrics)
  const { cluster } = config
  const shared = cluster.redis === undefined
    ? undefined
    : new RedisBroker({ ...cluster, url: cluster.redis, nodeId, metrics, log: app.log.child({ component: 'cluster' }) })
  const broker: Broker = shared ?? new MemoryBroker(metrics)
  const admissions = new Admissions(broker, nodeId, cluster.whenRedisDown)

  const endpoints = config.endpoints.map((endpoint) => {
    const log = app.log.child({ endpoint: endpoint.name })
    const limits = endpointLimits(config, endpoint)
    const registry = new SessionRegistry(endpoint.duplicate, endpoint.maxPerUser ?? DEFAULT_MAX_PER_USER)
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
      // in a cluster, a pool's assignments and failovers are the cluster's (docs/pools.md, "Clusters"); a `backend.url` has nothing to share
      directory: shared === undefined || backend.urls === undefined ? undefined : new ClusterDirectory({
        endpoint: endpoint.name,
        cluster: shared,
        lingerMs: backend.lingerMs,
        failoverMs: backend.failoverMs,
        periodMs: Math.max(100, Math.floor(Math.min(cluster.presenceTtlMs / 3, backend.failoverMs / 2))),
        metrics,
        log
      }),
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
    pool.on('overShare', (client) => registry.client(client)?.close(CloseCodes.QUEUE_SHARE_EXCEEDED))
    pool.on('unavailable', (clients) => {
      for (const client of clients) registry.client(client)?.close(CloseCodes.BACKEND_UNAVAILABLE)
    })
    const route: EndpointRoute = {
      config: endpoint,
      limits,
      registry,
      relay,
      available: () => pool.state !== 'unavailable',
      routable: (identity, params) => pool.routable({ user: identity.user, claims: identity.claims, params }),
      claim: async (identity, params, refresh) => await admissions.claim(endpoint, identity, params, refresh),
      // under `allow` a handshake given back took over nobody's claim
      release: (ticket) => admissions.release(ticket, endpoint.duplicate === 'allow' ? undefined : registry.get(ticket.connection.user)?.connection)
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
    reportLost: async (endpoint, user, params, conn) => await relayFor(endpoint)?.reportLost(user, params, conn),
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
      handleProtocols: selectSubprotocol,
      // the relay's registry knows every player socket; ws' own set of them would be a second one (and a listener per socket)
      clientTracking: false
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
  let leases: MemberLeases | undefined
  if (config.admin !== undefined) {
    const pools = new Map(endpoints.filter((e) => e.route.config.backend.urls !== undefined).map((e) => [e.route.config.name, { pool: e.pool, configured: e.members }] as const))
    const log = app.log.child({ component: 'admin' })
    // in a cluster the leases are the cluster's: any node's registration counts for all (docs/pools.md, "Clusters")
    leases = shared === undefined
      ? new PoolLeases(pools, config.admin, log)
      : new ClusterLeases({ pools, admin: config.admin, cluster: shared, periodMs: Math.max(100, Math.floor(config.admin.leaseMs / 6)), metrics, log })
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
