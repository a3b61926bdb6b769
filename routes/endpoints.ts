/**
 * The players' WebSocket endpoints. Every check runs in `preValidation`,
 * before @fastify/websocket upgrades, so a refused client gets a plain HTTP
 * status (401/403/409/503) and never holds a WebSocket.
 */
import type { ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { FastifyError } from '@fastify/error'
import type {} from '@fastify/websocket'
import type { Params } from '../protocol/index.js'
import type { Authenticator, Identity } from '../src/auth/authenticator.js'
import type { EndpointConfig, LimitsConfig } from '../src/config/schema.js'
import type { GatewayMetrics } from '../src/metrics.js'
import type { Ticket } from '../src/domain.js'
import type { EndpointRelay } from '../src/relay/relay.js'
import type { SessionRegistry } from '../src/sessions/registry.js'
import {
  GW_ERR_AT_CAPACITY, GW_ERR_BACKEND_UNAVAILABLE, GW_ERR_DRAINING, GW_ERR_DUPLICATE, GW_ERR_NO_ROUTING_KEY, GW_ERR_ORIGIN_FORBIDDEN,
  GW_ERR_UPGRADE_REQUIRED, refusalReason
} from '../src/errors.js'
import { pluginRetention } from './fastify-websocket-retention.js'

declare module 'fastify' {
  interface FastifyRequest {
    admitted: Admitted | null
  }
}

/** One endpoint as the routes see it. */
export interface EndpointRoute {
  config: Readonly<EndpointConfig>
  limits: Readonly<LimitsConfig>
  registry: SessionRegistry
  relay: EndpointRelay
  /** False once the backend has been away past `queue.graceMs`. */
  available (): boolean
  /** False when the client has no routing key for the endpoint's pool (`backend.route`). */
  routable (identity: Identity, params: Params): boolean
  /** Registers the handshake with the cluster; throws the error whose status the client gets. */
  /** `refresh`: the handshake asks to take over the user's live session (`?refresh=1`, PROTOCOL.md §5d). */
  claim (identity: Identity, params: Params, refresh: boolean): Promise<Ticket>
  /** Gives back a claim whose upgrade never happened. */
  release (ticket: Ticket): void
}

/** A handshake past every check, waiting for its upgrade. */
interface Admitted {
  identity: Identity
  ticket: Ticket
  /** Stops watching for the client leaving before the upgrade, and frees its in-flight place. */
  upgraded (): void
  /** The response @fastify/websocket routes the upgrade with (routes/fastify-websocket-retention.ts). */
  standIn: ServerResponse
}

/** Gateway-wide admission state. */
export interface Gate {
  draining (): boolean
  connections (): number
  maxConnections: number
}

export interface EndpointRoutesOptions {
  endpoints: readonly EndpointRoute[]
  authenticator: Authenticator
  gate: Gate
  metrics: GatewayMetrics
}

export async function endpointRoutes (app: FastifyInstance, { endpoints, authenticator, gate, metrics }: EndpointRoutesOptions): Promise<void> {
  app.decorateRequest('admitted', null)
  const inFlight = new InFlight()

  app.setErrorHandler((error: FastifyError, request, reply) => {
    const reason = refusalReason(error)
    if (reason === undefined) throw error
    metrics.handshakeFailures.inc({ endpoint: request.routeOptions.config.endpoint, reason })
    request.log.info({ reason, status: error.statusCode }, `handshake refused: ${error.message}`)
    return reply.code(error.statusCode ?? 500).send({ statusCode: error.statusCode, code: error.code, message: error.message })
  })

  for (const endpoint of endpoints) {
    app.route({
      method: 'GET',
      url: endpoint.config.path,
      websocket: true,
      config: { endpoint: endpoint.config.name },
      preValidation: async (request, reply) => {
        const { identity, leave } = await admit(request, endpoint, authenticator, gate, inFlight)
        const refresh = (request.query as Record<string, unknown> | undefined)?.refresh === '1'
        const claimed = await claimUntilUpgrade(request.raw.socket, endpoint, identity, request.params as Params, refresh, leave)
        request.admitted = { ...claimed, standIn: reply.raw }
      },
      handler: (socket, request) => {
        const { identity, ticket, upgraded, standIn } = request.admitted as Admitted
        upgraded()
        const release = pluginRetention(socket, standIn)
        endpoint.relay.accept(socket, identity, ticket)
        release()
      }
    })
  }
}

declare module 'fastify' {
  interface FastifyContextConfig {
    endpoint?: string
  }
}

/**
 * Handshakes past the capacity check whose upgrade has not yet happened nor
 * been given up. They count against the limits: in a cluster the claim
 * awaits Redis, and every handshake arriving meanwhile would otherwise see
 * the same free places.
 */
class InFlight {
  private total = 0
  private readonly byEndpoint = new Map<string, number>()

  count (endpoint?: string): number {
    return endpoint === undefined ? this.total : this.byEndpoint.get(endpoint) ?? 0
  }

  /** Counts one handshake; the function returned uncounts it, once. */
  enter (endpoint: string): () => void {
    this.total++
    this.byEndpoint.set(endpoint, this.count(endpoint) + 1)
    let counted = true
    return () => {
      if (!counted) return
      counted = false
      this.total--
      this.byEndpoint.set(endpoint, this.count(endpoint) - 1)
    }
  }
}

/**
 * Claims the handshake in the cluster and keeps its place until the upgrade.
 * A client that leaves first, even while the claim awaits Redis, gives back
 * its place (`leave`) and its claim. HTTP sockets allow half-open, so one that
 * only ends its side would never 'close': it is destroyed.
 */
async function claimUntilUpgrade (tcp: Socket, endpoint: EndpointRoute, identity: Identity, params: Params, refresh: boolean, leave: () => void): Promise<Omit<Admitted, 'standIn'>> {
  let ticket: Ticket | undefined
  let gone = false
  const abandon = (): void => {
    gone = true
    leave()
    if (ticket !== undefined) endpoint.release(ticket)
  }
  const hangUp = (): void => { tcp.destroy() }
  const unwatch = (): void => {
    tcp.off('close', abandon)
    tcp.off('end', hangUp)
    leave()
  }
  tcp.once('close', abandon)
  tcp.once('end', hangUp)
  // the client may have gone while its token waited for a key fetch, before these listeners
  if (tcp.destroyed) abandon()
  try {
    ticket = await endpoint.claim(identity, params, refresh)
  } catch (err) {
    unwatch()
    throw err
  }
  if (gone) endpoint.release(ticket)
  return { identity, ticket, upgraded: unwatch }
}

/**
 * The checks, cheapest and most general first. Throws the error whose status the client gets. The
 * token may wait for a key fetch: draining and capacity are checked again after it, and the place
 * taken (`leave` gives it back) in the same synchronous step as that last check.
 */
async function admit (request: FastifyRequest, endpoint: EndpointRoute, authenticator: Authenticator, gate: Gate, inFlight: InFlight): Promise<{ identity: Identity, leave: () => void }> {
  // RFC 6455 §4.1: a handshake is HTTP/1.1 or later; Node hands an HTTP/1.0 upgrade over all the same
  const { httpVersionMajor: major, httpVersionMinor: minor } = request.raw
  if (!request.ws || major < 1 || (major === 1 && minor < 1)) throw new GW_ERR_UPGRADE_REQUIRED()
  const origin = request.headers.origin
  const allowed = endpoint.limits.allowedOrigins
  if (origin !== undefined && allowed.length > 0 && !allowed.includes(origin)) throw new GW_ERR_ORIGIN_FORBIDDEN()
  const name = endpoint.config.name
  const checkRoom = (): void => {
    if (gate.draining()) throw new GW_ERR_DRAINING()
    if (gate.connections() + inFlight.count() >= gate.maxConnections ||
      endpoint.registry.size + inFlight.count(name) >= endpoint.limits.maxConnections) throw new GW_ERR_AT_CAPACITY()
  }
  checkRoom()
  const identity = await authenticator.authenticate(request)
  checkRoom()
  if (!endpoint.routable(identity, request.params as Params)) throw new GW_ERR_NO_ROUTING_KEY(endpoint.config.backend.route)
  if (!endpoint.available()) throw new GW_ERR_BACKEND_UNAVAILABLE()
  if (endpoint.registry.refuses(identity.user)) throw new GW_ERR_DUPLICATE()
  return { identity, leave: inFlight.enter(name) }
}
