/**
 * Upgrade requests that must not become WebSockets, and the HTTP errors
 * Node and fastify answer before any route runs. Once Node has emitted
 * 'upgrade', the TCP socket belongs to no HTTP server: a refusal that does
 * not destroy it leaves it open for good. No answer echoes the URL and no
 * log line holds the raw request: either may carry a token.
 */
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { GW_ERR_BAD_URL, GW_ERR_PARAM_TOO_LONG, GW_ERR_UPGRADE_REFUSED } from '../src/errors.js'

/**
 * Refuses upgrades on every route but a WebSocket endpoint's GET, so the
 * operator routes never hold a WebSocket. Register after @fastify/websocket,
 * whose own onRequest hook sets `request.ws`.
 */
export function refuseStrayUpgrades (app: FastifyInstance): void {
  // a callback hook: it runs for every request, each player's upgrade included, and an async one costs a promise each
  app.addHook('onRequest', (request, _reply, done) => {
    if (request.ws && !request.is404 && (request.method !== 'GET' || request.routeOptions.config.endpoint === undefined)) done(new GW_ERR_UPGRADE_REFUSED())
    else done()
  })
}

/**
 * An upgrade pipelined behind another request on one connection reaches
 * 'upgrade' while that request's response still holds the socket:
 * @fastify/websocket cannot route it and leaves the socket open for good.
 * Refused by ending the socket once the earlier response is done.
 */
export function endPipelinedUpgrades (app: FastifyInstance): void {
  app.server.prependListener('upgrade', (_request: IncomingMessage, socket: Socket & { _httpMessage?: ServerResponse | null }) => {
    const earlier = socket._httpMessage
    if (!earlier) return
    const end = (): void => { socket.destroy() }
    if (earlier.writableFinished) end()
    else earlier.once('finish', end).once('close', end)
  })
}

const BEFORE_ROUTING: Record<string, () => FastifyError> = {
  FST_ERR_BAD_URL: () => new GW_ERR_BAD_URL(),
  FST_ERR_MAX_PARAM_LENGTH: () => new GW_ERR_PARAM_TOO_LONG()
}

/**
 * Fastify's `frameworkErrors`: URLs refused before routing. Its own answers
 * echo the whole URL, query included, and skip the hooks through which
 * @fastify/websocket ends a refused upgrade's socket.
 */
export function frameworkErrors (error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const refusal = BEFORE_ROUTING[error.code]?.() ?? error
  const status = refusal.statusCode ?? 500
  const message = refusal === error ? STATUS_CODES[status] : refusal.message
  // an Upgrade header is what makes Node hand the socket over ('upgrade') instead of keeping it
  if (request.headers.upgrade !== undefined) reply.raw.once('finish', () => request.raw.socket.destroy())
  request.log.info({ code: refusal.code, status }, 'request refused before routing')
  void reply.code(status).send({ statusCode: status, code: refusal.code, message })
}

/**
 * Fastify's `clientErrorHandler`: requests Node cannot parse. Fastify's own
 * logs the error at trace, and with it `rawPacket`: the raw request,
 * Authorization header included.
 */
export function clientErrorHandler (this: FastifyInstance, error: NodeJS.ErrnoException, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return
  const status = error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : error.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400
  this.log.debug({ code: error.code, status }, 'unparsable HTTP request refused')
  if (socket.writable) {
    const body = JSON.stringify({ statusCode: status, message: STATUS_CODES[status] })
    socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n${body}`)
  }
  socket.destroy()
}
