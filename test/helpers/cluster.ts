/**
 * Cluster fixtures: gateway nodes as real `gatehouse` processes sharing one
 * Redis, and one backend that knows which node's link each event came by.
 */
import { once } from 'node:events'
import { WebSocketServer, type WebSocket } from 'ws'
import type { ReceivedEvent } from './backend.js'
import { runCli, type CliRun } from './cli.js'
import { metricValue, testConfig, type EndpointSpec } from './gateway.js'
import { Inbox } from './waiter.js'

export interface NodeEvent extends ReceivedEvent {
  /** The node id of the link it arrived on. */
  via: string
  endpoint: string
}

export interface ClusterBackend {
  url: string
  /** Every event but hello, batches flattened, in arrival order across all links (acked, on links with `backend.acks`). */
  events: Inbox<NodeEvent>
  hellos: Inbox<NodeEvent>
  /** Sends actions down one node's link of one endpoint. */
  sendVia (node: string, endpoint: string, frame: unknown): void
  /** Called for every event, as it arrives. */
  onEvent?: (event: NodeEvent) => void
}

export async function clusterBackendFor (t: { teardown (fn: () => unknown): void }): Promise<ClusterBackend> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await once(wss, 'listening')
  t.teardown(async () => {
    for (const client of wss.clients) client.terminate()
    await new Promise((resolve) => wss.close(resolve))
  })
  const links = new Map<string, WebSocket>()
  const backend: ClusterBackend = {
    url: `ws://127.0.0.1:${(wss.address() as { port: number }).port}`,
    events: new Inbox(),
    hellos: new Inbox(),
    sendVia (node, endpoint, frame) {
      const link = links.get(`${node}/${endpoint}`)
      if (!link) throw new Error(`no link from ${node}/${endpoint}`)
      link.send(typeof frame === 'string' ? frame : JSON.stringify(frame))
    }
  }
  wss.on('connection', (socket) => {
    let via = '?'
    let endpoint = '?'
    socket.on('message', (data) => {
      let seq = 0
      for (const raw of [JSON.parse(data.toString()) as ReceivedEvent | ReceivedEvent[]].flat()) {
        if (typeof raw.seq === 'number' && raw.event !== 'sync') seq = Math.max(seq, raw.seq)
        if (raw.event === 'hello') {
          via = String(raw.gateway)
          endpoint = String(raw.endpoint)
          links.set(`${via}/${endpoint}`, socket)
          backend.hellos.push({ ...raw, via, endpoint })
          continue
        }
        const event = { ...raw, via, endpoint }
        backend.events.push(event)
        backend.onEvent?.(event)
      }
      // a link with backend.acks: recorded means processed
      if (seq > 0) socket.send(JSON.stringify({ action: 'ack', seq }))
    })
  })
  return backend
}

export interface GatewayNode {
  id: string
  port: number
  run: CliRun
  url (path: string): string
  get (path: string): Promise<{ status: number, body: string }>
  metric (name: string, labels?: Record<string, string>): Promise<number>
}

/** Cluster timings short enough for tests: a dead node is reaped within about 2 s. */
export const TEST_CLUSTER = { name: 'gh-test', presenceTtlMs: 1500, handoffTimeoutMs: 2000 }

/** Starts a `gatehouse` process as node `id` of the cluster on `redis` (`more`: other top-level config); it is SIGKILLed at teardown if still running. */
export async function startNode (
  t: { teardown (fn: () => unknown): void },
  id: string,
  redis: string,
  endpoints: EndpointSpec[],
  cluster: Record<string, unknown> = {},
  args: string[] = [],
  more: Record<string, unknown> = {}
): Promise<GatewayNode> {
  const config = testConfig(endpoints, {
    server: { host: '127.0.0.1', port: 0, nodeId: id, shutdownTimeoutMs: 3000 },
    cluster: { ...TEST_CLUSTER, redis, ...cluster },
    log: { level: 'info' },
    ...more
  })
  const run = runCli(config, {}, args)
  t.teardown(() => { if (run.child.exitCode === null) run.child.kill('SIGKILL') })
  const listening = await run.lines.next((l) => /Server listening at/.test(String(l.msg)), 15000, `node ${id} listening`)
  const port = Number(/:(\d+)$/.exec(String(listening.msg))?.[1])
  const get = async (path: string): Promise<{ status: number, body: string }> => {
    const res = await fetch(`http://127.0.0.1:${port}${path}`)
    return { status: res.status, body: await res.text() }
  }
  return {
    id,
    port,
    run,
    url: (path) => `ws://127.0.0.1:${port}${path}`,
    get,
    metric: async (name, labels) => metricValue((await get('/metrics')).body, name, labels)
  }
}

/** Polls `read` until `done` holds (an event that no socket announces, such as a counter settling). */
export async function eventually<T> (read: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 15000, what = 'a condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await read()
    if (done(value)) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${JSON.stringify(value)}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}
