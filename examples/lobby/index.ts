/** Starts the example lobby service on the SDK. */
import { GatehouseBackend, type BackendLogger } from '../../src/sdk/index.js'
import { Lobby } from './lobby.js'

export interface ServiceOptions {
  port?: number
  host?: string
  /** The bearer token the gateway presents (`backend.token` in its config). */
  token?: string
  /** Without `token`: accept any caller (local development only; logged as a warning). */
  allowUnauthenticated?: boolean
  logger?: BackendLogger
  /** @default 30000 */
  linkGraceMs?: number
}

export interface RunningLobby {
  lobby: Lobby
  backend: GatehouseBackend
  port: number
  url: string
  stop (): Promise<void>
}

export async function startLobby (options: ServiceOptions = {}): Promise<RunningLobby> {
  const backend = new GatehouseBackend({ token: options.token, allowUnauthenticated: options.allowUnauthenticated, logger: options.logger, linkGraceMs: options.linkGraceMs })
  const lobby = new Lobby(backend)
  backend.handle(lobby)
  const { port, url } = await backend.listen({ port: options.port, host: options.host })
  return { lobby, backend, port, url, stop: async () => await backend.stop() }
}
