/**
 * Logger options: pino JSON lines in which no token appears (docs/operations.md, Logs).
 * The request serializer logs no headers, and rewrites `?access_token=` in
 * the URL; routes/not-found.ts does the same for unknown paths.
 */
import type { FastifyServerOptions } from 'fastify'
import type { DestinationStream } from 'pino'

/**
 * The URL with every `access_token` query value replaced. Keys are compared
 * decoded, as the query parser reads them (`%61ccess_token` is the same key).
 */
export function redactUrl (url: string): string {
  const at = url.indexOf('?')
  if (at < 0) return url
  const query = new URLSearchParams(url.slice(at + 1))
  let touched = false
  for (const key of new Set(query.keys())) {
    if (key.trim().toLowerCase() === 'access_token') {
      query.set(key, '[REDACTED]')
      touched = true
    }
  }
  return touched ? `${url.slice(0, at)}?${query.toString().replace(/%5BREDACTED%5D/g, '[REDACTED]')}` : url
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
