/**
 * Logger options: pino JSON lines in which no token appears (docs/operations.md, Logs).
 * The request serializer logs no headers, and rewrites every query value in
 * the URL; routes/not-found.ts does the same for unknown paths.
 */
import type { FastifyServerOptions } from 'fastify'
import type { DestinationStream } from 'pino'

/**
 * The URL with every query value replaced, keys kept. Not only
 * `access_token`: a client that puts a token under another name (`?token=`
 * for a player's JWT or the admin token) is refused, and must not have it
 * logged either; no query value is needed in a log line.
 */
export function redactUrl (url: string): string {
  const at = url.indexOf('?')
  if (at < 0) return url
  const query = new URLSearchParams(url.slice(at + 1))
  for (const key of new Set(query.keys())) query.set(key, '[REDACTED]')
  return `${url.slice(0, at)}?${query.toString().replace(/%5BREDACTED%5D/g, '[REDACTED]')}`
}

export interface RawRequest {
  method?: string
  url?: string
  ip?: string
  socket?: { remoteAddress?: string, remotePort?: number }
}

/** Fastify's request log fields, no headers, the URL redacted: an app embedding the plugin gives it to its logger. */
export function requestSerializer (req: RawRequest): Record<string, unknown> {
  return {
    method: req.method,
    url: redactUrl(req.url ?? ''),
    remoteAddress: req.ip ?? req.socket?.remoteAddress,
    remotePort: req.socket?.remotePort
  }
}

export function loggerOptions (level: string, stream?: DestinationStream): FastifyServerOptions['logger'] {
  return {
    level,
    ...(stream ? { stream } : {}),
    serializers: { req: requestSerializer }
  }
}
