/**
 * Logger options: pino JSON lines in which no token appears (docs/operations.md, Logs).
 * The request serializer logs no headers, and rewrites every query value in
 * the URL; routes/not-found.ts does the same for unknown paths.
 */
import type { FastifyBaseLogger, FastifyServerOptions } from 'fastify'
import type { Bindings, ChildLoggerOptions, DestinationStream, Level, LevelWithSilent } from 'pino'

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

type Logged = FastifyBaseLogger & { isLevelEnabled (level: Level): boolean }

/**
 * Fastify's `childLoggerFactory`: the request's child logger (its `reqId`)
 * is made on its first line at a level the logger writes. Fastify asks for
 * one for every request, each player's upgrade included; at `warn` and above
 * most are never written to, and making them was ~3 % of a handshake's CPU.
 */
export function lazyRequestLogger (logger: FastifyBaseLogger, bindings: Bindings, options: ChildLoggerOptions): FastifyBaseLogger {
  // a route's own level or serializers: the child differs from its parent in what it writes
  if (options.level !== undefined || options.serializers !== undefined) return logger.child(bindings, options)
  return new LazyChild(logger as Logged, bindings)
}

class LazyChild implements FastifyBaseLogger {
  private made?: FastifyBaseLogger

  constructor (private readonly parent: Logged, private readonly bindings: Bindings) {}

  get level (): LevelWithSilent | (string & {}) {
    return this.made?.level ?? this.parent.level
  }

  set level (level: LevelWithSilent | (string & {})) {
    this.own().level = level
  }

  child (bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.own().child(bindings, options)
  }

  fatal (...args: unknown[]): void { this.write('fatal', args) }
  error (...args: unknown[]): void { this.write('error', args) }
  warn (...args: unknown[]): void { this.write('warn', args) }
  info (...args: unknown[]): void { this.write('info', args) }
  debug (...args: unknown[]): void { this.write('debug', args) }
  trace (...args: unknown[]): void { this.write('trace', args) }
  silent (): void {}

  private write (level: Level, args: unknown[]): void {
    // once made, the child decides (its level may have been set); until then the parent's level does
    if (this.made === undefined && !this.parent.isLevelEnabled(level)) return
    ;(this.own()[level] as (...a: unknown[]) => void)(...args)
  }

  private own (): FastifyBaseLogger {
    this.made ??= this.parent.child(this.bindings)
    return this.made
  }
}
