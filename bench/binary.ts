/**
 * Binary end to end (issue 15 item 2): round trips of binary frames through
 * the gateway with `backend.encoding: "binary"` against the same gateway with
 * base64 in JSON and against a direct `ws` echo, interleaved in one run
 * (medians of the runs, every run listed); bytes on the link per event; and
 * the link codecs side by side in one process (JSON + base64, the binary
 * records of PROTOCOL.md §2a, MessagePack via msgpackr, a devDependency for this comparison only).
 *
 *   npm run bench:binary                 # writes bench/binary-results.md and .json
 *   BINARY_SMOKE=1 node dist/bench/binary.js   # a few seconds, output in a temp dir
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import os, { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { Packr } from 'msgpackr'
import { WebSocket } from 'ws'
import {
  decodeBinaryEvents, decodeEvents, encodeBinaryFrame, encodeBinaryMessage, messageHead, messagePrefix, withSeq
} from '../protocol/index.js'
import { machineConditions } from './conditions.js'
import { ECHO_SERVER, gatewayConfig, GATEWAY, NODE_FLAGS } from './contenders.js'
import { LINK_PATH, PATH } from './endpoints.js'
import { forkChild, type Child } from './ipc.js'
import { cpuMs } from './procfs.js'
import { Histogram, median } from './stats.js'
import { signToken } from './tokens.js'

const SMOKE = process.env.BINARY_SMOKE === '1'
const RUNS = Number(process.env.BINARY_RUNS ?? (SMOKE ? 1 : 5))
const CLIENTS = (process.env.BINARY_CLIENTS ?? (SMOKE ? '4' : '10,100')).split(',').map(Number)
const DURATION_MS = Number(process.env.BINARY_DURATION_MS ?? (SMOKE ? 300 : 3000))
const WARMUP_MS = Number(process.env.BINARY_WARMUP_MS ?? (SMOKE ? 100 : 500))
const PAYLOAD = Number(process.env.BINARY_PAYLOAD ?? 1024)
const CODEC_ITERATIONS = SMOKE ? 2000 : 50000
const SOURCE_DIR = fileURLToPath(new URL('../../bench/', import.meta.url))
const OUT = process.env.BINARY_OUT ?? (SMOKE ? mkdtempSync(join(tmpdir(), 'gatehouse-binary-smoke-')) : SOURCE_DIR)
const BACKEND = fileURLToPath(new URL('./servers/binary-echo-backend.js', import.meta.url))

const JSON_CODEC = 'JSON + base64 (version 1)'
const RECORDS_CODEC = 'binary records (§2a)'

const CONTENDERS = ['direct', 'gatehouse-json', 'gatehouse-binary'] as const
type Name = typeof CONTENDERS[number]

interface Contender {
  name: Name
  url: string
  token: boolean
  /** Every server process: the echo server, or gateway and backend. */
  pids: number[]
  backend?: Child
  stop (): Promise<void>
}

interface LinkCounts { messages: number, payloadBytes: number, inFrames: number, inBytes: number, outFrames: number, outBytes: number }

interface Run {
  contender: Name
  clients: number
  round: number
  roundTrips: number
  perSecond: number
  p50Ms: number
  p99Ms: number
  /** User + system CPU of every server process per round trip (per-thread schedstat over the window). */
  cpuUsPerRoundTrip: number
  link?: LinkCounts
}

async function start (name: Name): Promise<Contender> {
  if (name === 'direct') {
    const { child, ready } = await forkChild<{ port: number }>('direct echo server', ECHO_SERVER, { execArgv: NODE_FLAGS })
    return { name, url: `ws://127.0.0.1:${ready.port}${PATH}`, token: false, pids: [child.pid], stop: () => child.stop() }
  }
  const backend = await forkChild<{ port: number }>(`${name} backend`, BACKEND, { execArgv: NODE_FLAGS })
  const config = gatewayConfig(`ws://127.0.0.1:${backend.ready.port}${LINK_PATH}`)
  const [endpoint] = config.endpoints as Array<{ backend: Record<string, unknown> }>
  endpoint.backend.encoding = name === 'gatehouse-binary' ? 'binary' : 'json'
  const gateway = await forkChild<{ port: number }>(name, GATEWAY, { execArgv: NODE_FLAGS, args: [JSON.stringify(config)] })
  await gateway.child.call('ready')
  return {
    name,
    url: `ws://127.0.0.1:${gateway.ready.port}${PATH}`,
    token: true,
    pids: [gateway.child.pid, backend.child.pid],
    backend: backend.child,
    stop: async () => {
      await gateway.child.stop(10000)
      await backend.child.stop()
    }
  }
}

/** `clients` sockets, one binary frame in flight each, every echo checked byte for byte. */
async function roundTrips (contender: Contender, clients: number, round: number): Promise<Run> {
  const sockets = await Promise.all(Array.from({ length: clients }, async (_, i) => {
    const headers: Record<string, string> = contender.token ? { authorization: `Bearer ${signToken(`bin-${round}-${i}`)}` } : {}
    const ws = new WebSocket(contender.url, { headers, perMessageDeflate: false })
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve())
      ws.once('error', reject)
    })
    return ws
  }))
  const histogram = new Histogram()
  let measuring = false
  let stopping = false
  let count = 0
  const loops = sockets.map(async (ws, i) => {
    const payload = Buffer.alloc(PAYLOAD)
    for (let b = 0; b < PAYLOAD; b++) payload[b] = (b * 31 + i) & 0xff
    let n = 0
    while (!stopping) {
      payload.writeUInt32BE(n++ >>> 0, 0)
      const sent = performance.now()
      const echo = await new Promise<Buffer>((resolve, reject) => {
        ws.once('message', (data: Buffer, isBinary: boolean) => isBinary ? resolve(data) : reject(new Error(`${contender.name}: a text frame came back`)))
        ws.send(payload)
      })
      if (!echo.equals(payload)) throw new Error(`${contender.name}: the echo differs from the frame sent`)
      if (measuring) {
        histogram.record((performance.now() - sent) * 1000)
        count++
      }
    }
  })
  const failed = Promise.all(loops)
  await Promise.race([new Promise((resolve) => setTimeout(resolve, WARMUP_MS)), failed])
  await contender.backend?.call('take')
  measuring = true
  const cpuBefore = cpuMs(contender.pids)
  const began = performance.now()
  await Promise.race([new Promise((resolve) => setTimeout(resolve, DURATION_MS)), failed])
  measuring = false
  const elapsed = performance.now() - began
  const cpu = cpuMs(contender.pids) - cpuBefore
  const link = await contender.backend?.call<LinkCounts>('take')
  stopping = true
  await failed
  for (const ws of sockets) ws.close()
  return {
    contender: contender.name,
    clients,
    round,
    roundTrips: count,
    perSecond: Math.round(count / (elapsed / 1000)),
    p50Ms: histogram.quantile(0.5) / 1000,
    p99Ms: histogram.quantile(0.99) / 1000,
    cpuUsPerRoundTrip: count > 0 ? cpu * 1000 / count : NaN,
    ...(link ? { link } : {})
  }
}

interface CodecRun { codec: string, round: number, bytes: number, nsPerEvent: number }

/** Encode + decode of one `message` event carrying PAYLOAD bytes, gateway → backend, per codec. */
async function codecs (): Promise<{ runs: CodecRun[], msgpackr: string }> {
  const user = 'player-0001'
  const params = { matchId: 'm42' }
  const seq = 12345
  const data = Buffer.alloc(PAYLOAD, 7)
  const prefix = messagePrefix(user, params)
  const item = { user, text: '', raw: { head: messageHead(user, params) as Buffer, data }, seq }
  const candidates: Array<{ codec: string, bytes: number, once (): number }> = [
    {
      codec: JSON_CODEC,
      bytes: Buffer.byteLength(withSeq(encodeBinaryMessage(prefix, data), seq)),
      once () {
        const [event] = decodeEvents(withSeq(encodeBinaryMessage(prefix, data), seq)).items
        return Buffer.from((event as { data: string }).data, 'base64').length
      }
    },
    {
      codec: RECORDS_CODEC,
      bytes: encodeBinaryFrame([item]).length,
      once: () => (decodeBinaryEvents(encodeBinaryFrame([item]), false).items[0] as { data: Buffer }).data.length
    }
  ]
  const packr = new Packr({ useRecords: false })
  const event = { event: 'message', user, params, data, binary: true, seq }
  const msgpackr = 'msgpackr (Packr, useRecords: false), decoded without the schema validation the link would still need'
  candidates.push({
    codec: 'MessagePack (msgpackr)',
    bytes: packr.pack(event).length,
    once: () => (packr.unpack(packr.pack(event)) as { data: Buffer }).data.length
  })
  const runs: CodecRun[] = []
  for (let round = 0; round < RUNS; round++) {
    for (const candidate of rotate(candidates, round)) {
      for (let i = 0; i < CODEC_ITERATIONS / 10; i++) candidate.once()
      const began = process.hrtime.bigint()
      for (let i = 0; i < CODEC_ITERATIONS; i++) if (candidate.once() !== PAYLOAD) throw new Error(`${candidate.codec}: payload lost`)
      runs.push({ codec: candidate.codec, round, bytes: candidate.bytes, nsPerEvent: Math.round(Number(process.hrtime.bigint() - began) / CODEC_ITERATIONS) })
    }
  }
  return { runs, msgpackr }
}

function rotate<T> (list: readonly T[], by: number): T[] {
  return list.map((_, i) => list[(i + by) % list.length])
}

const fmt = (n: number, digits = 0): string => Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : 'n/a'

async function main (): Promise<void> {
  const startedAt = Date.now()
  // the source revision as measured, before anything can change under a long run
  const machine = machineConditions(startedAt)
  const loadBefore = os.loadavg()
  const codec = await codecs()
  const contenders: Contender[] = []
  const runs: Run[] = []
  try {
    for (const name of CONTENDERS) contenders.push(await start(name))
    for (let round = 0; round < RUNS; round++) {
      for (const clients of CLIENTS) {
        for (const contender of rotate(contenders, round)) {
          const run = await roundTrips(contender, clients, round)
          runs.push(run)
          console.log(`round ${round + 1}/${RUNS} ${clients} clients ${contender.name}: ${fmt(run.perSecond)}/s p50 ${fmt(run.p50Ms, 2)} ms p99 ${fmt(run.p99Ms, 2)} ms, ${fmt(run.cpuUsPerRoundTrip, 1)} µs server CPU each`)
        }
      }
    }
  } finally {
    for (const contender of contenders) await contender.stop()
  }
  const conditions = {
    ...machine,
    loadAverageBefore: loadBefore.map((l) => Math.round(l * 100) / 100),
    loadAverageAfter: os.loadavg().map((l) => Math.round(l * 100) / 100),
    shared: 'the 2-core machine was shared with other helpers building and testing at the same time: absolute figures are low and noisy, the same-run ratios are what to read',
    runs: RUNS,
    durationMs: DURATION_MS,
    warmupMs: WARMUP_MS,
    payloadBytes: PAYLOAD,
    msgpackr: codec.msgpackr
  }
  const result = { conditions, runs, codecRuns: codec.runs }
  writeFileSync(join(OUT, 'binary-results.json'), `${JSON.stringify(result, null, 2)}\n`)
  writeFileSync(join(OUT, 'binary-results.md'), render(result))
  console.log(render(result))
  console.log(`written to ${OUT}`)
}

function render ({ conditions, runs, codecRuns }: { conditions: Record<string, unknown>, runs: Run[], codecRuns: CodecRun[] }): string {
  const lines: string[] = ['# Binary end to end (issue 15 item 2)', '', `${PAYLOAD}-byte binary frames, one in flight per client, every echo checked byte for byte; median of ${RUNS} interleaved runs.`, '']
  lines.push('| clients | figure | direct | gatehouse-json | gatehouse-binary | binary ÷ json | binary ÷ direct |', '|---|---|---|---|---|---|---|')
  for (const clients of CLIENTS) {
    const of = (name: Name, key: 'perSecond' | 'p50Ms' | 'p99Ms' | 'cpuUsPerRoundTrip'): number => median(runs.filter((r) => r.contender === name && r.clients === clients).map((r) => r[key]))
    for (const [key, label, digits] of [['perSecond', 'round trips/s', 0], ['p50Ms', 'p50 ms', 2], ['p99Ms', 'p99 ms', 2], ['cpuUsPerRoundTrip', 'server CPU µs per round trip', 1]] as const) {
      const [d, j, b] = CONTENDERS.map((name) => of(name, key))
      lines.push(`| ${clients} | ${label} | ${fmt(d, digits)} | ${fmt(j, digits)} | ${fmt(b, digits)} | ${fmt(b / j, 2)}× | ${fmt(b / d, 2)}× |`)
    }
  }
  lines.push('', '## Bytes on the link per event', '', 'Counted by the backend over the measured windows, WebSocket frame headers included (the gateway masks its frames: +4 bytes); payload is the player\'s bytes.', '',
    '| encoding | payload B | gateway → backend B/event | over payload | backend → gateway B/action | over payload |', '|---|---|---|---|---|---|')
  for (const name of ['gatehouse-json', 'gatehouse-binary'] as const) {
    const totals = runs.filter((r) => r.contender === name && r.link).reduce((t, r) => {
      const l = r.link as LinkCounts
      return { messages: t.messages + l.messages, payload: t.payload + l.payloadBytes, inBytes: t.inBytes + l.inBytes, outBytes: t.outBytes + l.outBytes }
    }, { messages: 0, payload: 0, inBytes: 0, outBytes: 0 })
    const per = (n: number): number => n / totals.messages
    const payload = per(totals.payload)
    lines.push(`| ${name} | ${fmt(payload)} | ${fmt(per(totals.inBytes), 1)} | ${fmt((per(totals.inBytes) / payload - 1) * 100, 1)} % | ${fmt(per(totals.outBytes), 1)} | ${fmt((per(totals.outBytes) / payload - 1) * 100, 1)} % |`)
  }
  lines.push('', '## Link codecs in one process', '', `Encode + decode of one \`message\` event with ${PAYLOAD} bytes (gateway → backend), ${CODEC_ITERATIONS} iterations per run, median of ${RUNS}.`, '',
    '| codec | bytes | ns per event | ÷ binary records |', '|---|---|---|---|')
  const codecNames = [...new Set(codecRuns.map((r) => r.codec))]
  const nsOf = (codecName: string): number => median(codecRuns.filter((r) => r.codec === codecName).map((r) => r.nsPerEvent))
  for (const codecName of codecNames) {
    const bytes = codecRuns.find((r) => r.codec === codecName)?.bytes ?? NaN
    lines.push(`| ${codecName} | ${fmt(bytes)} | ${fmt(nsOf(codecName))} | ${fmt(nsOf(codecName) / nsOf(RECORDS_CODEC), 2)}× |`)
  }
  lines.push('', '## Every run', '', '| round | clients | contender | round trips/s | p50 ms | p99 ms | server CPU µs/round trip |', '|---|---|---|---|---|---|---|')
  for (const r of runs) lines.push(`| ${r.round + 1} | ${r.clients} | ${r.contender} | ${fmt(r.perSecond)} | ${fmt(r.p50Ms, 2)} | ${fmt(r.p99Ms, 2)} | ${fmt(r.cpuUsPerRoundTrip, 1)} |`)
  lines.push('', '| round | codec | ns per event |', '|---|---|---|')
  for (const r of codecRuns) lines.push(`| ${r.round + 1} | ${r.codec} | ${fmt(r.nsPerEvent)} |`)
  lines.push('', '## Conditions', '', '```json', JSON.stringify(conditions, null, 2), '```', '')
  return lines.join('\n')
}

await main()
