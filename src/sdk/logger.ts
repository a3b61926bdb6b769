/** The pino methods the SDK logs through; a pino or fastify logger fits. */
export interface BackendLogger {
  debug (obj: object, msg: string): void
  info (obj: object, msg: string): void
  warn (obj: object, msg: string): void
  error (obj: object, msg: string): void
}
