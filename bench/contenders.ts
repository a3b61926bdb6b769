/**
 * The contenders, each started on loopback as its own processes so their
 * memory can be read apart:
 * - direct: clients ↔ a plain ws echo server;
 * - nginx: clients → nginx → a plain ws echo server;
 * - socketio: clients ↔ a socket.io echo server (websocket transport only);
 * - gatehouse: clients → gateway → one link → an echo backend;
 * - gatehouse-raw: the same with `backend.encoding: "raw"` (PROTOCOL.md §2a)
 *   → an echo backend answering TEXT records with TEXT_SEND records.
 */
import { fileURLToPath } from 'node:url'
import { forkChild, type Child } from './ipc.js'
import { startNginx, type NginxProxy } from './nginx.js'
import { LINK_PATH, PATH } from './endpoints.js'
import type { ClientProtocol } from './load/protocol.js'
import { BENCH_AUDIENCE, BENCH_ISSUER, BENCH_SECRET } from './tokens.js'

export const CONTENDERS = ['direct', 'nginx', 'socketio', 'gatehouse', 'gatehouse-raw'] as const
/**
 * `gatehouse-b`: a second build of the gateway (BENCH_GATEHOUSE_B), measured
 * in the same run, so a change to src/ can be judged against the current one
 * under the same noise.
 */
export const ALL_CONTENDERS = [...CONTENDERS, 'gatehouse-b'] as const
export type ContenderName = typeof ALL_CONTENDERS[number]

export { PATH } from './endpoints.js'

export const ECHO_SERVER = fileURLToPath(new URL('./servers/echo-server.js', import.meta.url))
export const ECHO_BACKEND = fileURLToPath(new URL('./servers/echo-backend.js', import.meta.url))
const RAW_ECHO_BACKEND = fileURLToPath(new URL('./servers/raw-echo-backend.js', import.meta.url))
const SOCKETIO_SERVER = fileURLToPath(new URL('./servers/socketio-server.js', import.meta.url))
export const GATEWAY = fileURLToPath(new URL('./servers/gateway-server.js', import.meta.url))

export interface Contender {
  name: ContenderName
  url: string
  /** What its clients speak on the socket. */
  protocol: ClientProtocol
  /** The process(es) between the clients and the backend; for direct, the echo server itself. */
  hopPids (): number[]
  /** The process that holds the game logic's end. */
  backendPid: number
  /** One message to every client, sent by the game logic's end; `sentAt` is wall-clock ms just before it is written. */
  broadcast (id: number): Promise<{ sentAt: number }>
  /** gatehouse: frames and `message` events its backend has received, so a run can say how many events a link frame carried. */
  linkStats?: () => Promise<{ frames: number, messages: number }>
  /** A full GC in every Node process of the contender, before memory is read. */
  gc (): Promise<void>
  stop (): Promise<void>
}

export interface StartOptions {
  nginxBinary?: string
  nginxWorkers: string
  /** Directory for the gateway's --cpu-prof output, when profiling. */
  cpuProfDir?: string
  /** The `gatehouse-b` build: its dist/src/index.js. */
  gatehouseB?: string
  /** The `gatehouse-b` build on a raw link, as `gatehouse-raw`. */
  gatehouseBRaw?: boolean
  /** Node flags for the `gatehouse-b` process only. */
  gatehouseBFlags?: string[]
  /** False: the gateway's link unmasked (`backend.mask: false`). */
  linkMask?: boolean
}

export const NODE_FLAGS = ['--expose-gc']

async function echoServer (name: string): Promise<{ child: Child, port: number }> {
  const { child, ready } = await forkChild<{ port: number }>(name, ECHO_SERVER, { execArgv: NODE_FLAGS })
  return { child, port: ready.port }
}

export function gatewayConfig (backendUrl: string, encoding: 'json' | 'raw' = 'json', mask = true): Record<string, unknown> {
  return {
    server: { host: '127.0.0.1', port: 0, shutdownTimeoutMs: 2000 },
    auth: { secret: BENCH_SECRET, algorithms: ['HS256'], issuer: BENCH_ISSUER, audience: BENCH_AUDIENCE, tokenSources: ['header', 'subprotocol', 'query'] },
    endpoints: [{ name: 'bench', path: PATH, backend: { url: backendUrl, encoding, ...(mask ? {} : { mask: false }) } }],
    // the load is one message in flight per client, far above a player's rate: the limiter must not be what is measured
    limits: { messagesPerSecond: 1e9, burst: 1e9, maxConnections: 100000 },
    log: { level: 'silent' }
  }
}

export async function startContender (name: ContenderName, options: StartOptions): Promise<Contender> {
  if (name === 'direct') {
    const echo = await echoServer('direct echo server')
    return {
      name,
      url: `ws://127.0.0.1:${echo.port}${PATH}`,
      protocol: 'ws',
      hopPids: () => [echo.child.pid],
      backendPid: echo.child.pid,
      broadcast: (id) => echo.child.call('broadcast', { id }),
      gc: async () => { await echo.child.call('gc') },
      stop: () => echo.child.stop()
    }
  }
  if (name === 'socketio') {
    const { child, ready } = await forkChild<{ port: number }>('socket.io echo server', SOCKETIO_SERVER, { execArgv: NODE_FLAGS })
    return {
      name,
      url: `ws://127.0.0.1:${ready.port}${PATH}/?EIO=4&transport=websocket`,
      protocol: 'socketio',
      hopPids: () => [child.pid],
      backendPid: child.pid,
      broadcast: (id) => child.call('broadcast', { id }),
      gc: async () => { await child.call('gc') },
      stop: () => child.stop()
    }
  }
  if (name === 'nginx') {
    if (!options.nginxBinary) throw new Error('nginx is not available')
    const echo = await echoServer('echo server behind nginx')
    let proxy: NginxProxy
    try {
      proxy = await startNginx(options.nginxBinary, echo.port, options.nginxWorkers)
    } catch (err) {
      await echo.child.stop()
      throw err
    }
    return {
      name,
      url: `ws://127.0.0.1:${proxy.port}${PATH}`,
      protocol: 'ws',
      hopPids: () => proxy.pids(),
      backendPid: echo.child.pid,
      broadcast: (id) => echo.child.call('broadcast', { id }),
      gc: async () => { await echo.child.call('gc') },
      stop: async () => {
        await proxy.stop()
        await echo.child.stop()
      }
    }
  }
  if (name === 'gatehouse-b' && !options.gatehouseB) throw new Error('gatehouse-b needs BENCH_GATEHOUSE_B')
  const raw = name === 'gatehouse-raw' || (name === 'gatehouse-b' && options.gatehouseBRaw === true)
  const backend = await forkChild<{ port: number }>(raw ? 'raw echo backend' : 'echo backend', raw ? RAW_ECHO_BACKEND : ECHO_BACKEND, { execArgv: NODE_FLAGS })
  const flags = options.cpuProfDir ? [...NODE_FLAGS, '--cpu-prof', `--cpu-prof-dir=${options.cpuProfDir}`] : NODE_FLAGS
  let gateway: Child | undefined
  try {
    const config = JSON.stringify(gatewayConfig(`ws://127.0.0.1:${backend.ready.port}${LINK_PATH}`, raw ? 'raw' : 'json', options.linkMask !== false))
    const started = await forkChild<{ port: number }>(name, GATEWAY, {
      execArgv: name === 'gatehouse-b' ? [...flags, ...options.gatehouseBFlags ?? []] : flags,
      args: name === 'gatehouse-b' ? [config, options.gatehouseB as string] : [config]
    })
    const child = gateway = started.child
    await child.call('ready')
    const port = started.ready.port
    return {
      name,
      url: `ws://127.0.0.1:${port}${PATH}`,
      protocol: 'ws',
      hopPids: () => [child.pid],
      backendPid: backend.child.pid,
      broadcast: (id) => backend.child.call('broadcast', { id }),
      linkStats: async () => await backend.child.call('stats'),
      gc: async () => { await Promise.all([child.call('gc'), backend.child.call('gc')]) },
      stop: async () => {
        await child.stop(10000)
        await backend.child.stop()
      }
    }
  } catch (err) {
    await gateway?.stop()
    await backend.child.stop()
    throw err
  }
}
