/**
 * Logger options: pino JSON lines, with every place a token can travel
 * redacted (DESIGN.md §5). `?access_token=` rides in the URL, so the request
 * serializer rewrites it.
 */
import type { FastifyServerOptions } from 'fastify'
import type { DestinationStream } from 'pino'

const QUERY_TOKEN = /([?&]access_token=)[^&#]*/gi

export function redactUrl (url: string): string {
  return url.replace(QUERY_TOKEN, '$1[REDACTED]')
}

interface RawRequest {
  method?: string
  url?: string
  ip?: string
  socket?: { remoteAddress?: string, remotePort?: number }
}

export function loggerOptions (level: string, stream?: DestinationStream): FastifyServerOptions['logger'] {
  return {
    level,
    ...(stream ? { stream } : {}),
    redact: {
      paths: ['req.headers.authorization', 'req.headers["sec-websocket-protocol"]', 'req.query.access_token', 'token', 'secret'],
      censor: '[REDACTED]'
    },
    serializers: {
      req: (req: RawRequest) => ({
        method: req.method,
        url: redactUrl(req.url ?? ''),
        remoteAddress: req.ip ?? req.socket?.remoteAddress,
        remotePort: req.socket?.remotePort
      })
    }
  }
}
