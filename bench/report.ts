/** The bench's one table (ratios to the baselines), the issue-5 targets, and bench/results.md. */
import type { BenchResult, ContenderFigures } from './bench.js'
import type { ContenderName } from './contenders.js'
import { renderStorm } from './storm.js'

interface Column {
  title: string
  value (f: ContenderFigures): number | undefined
  format (v: number): string
  /** Whether a smaller value is better (only for the reader; ratios are always gatehouse ÷ other). */
  lowerIsBetter?: boolean
}

const int = (v: number): string => Math.round(v).toLocaleString('en-US')
const fixed = (digits: number) => (v: number): string => v.toFixed(digits)
const MiB = 2 ** 20

export function columns (result: BenchResult): Column[] {
  const o = result.options
  const cols: Column[] = []
  if (o.workloads.includes('throughput')) {
    for (const n of o.clientCounts) {
      cols.push({ title: `rt/s @${n}`, value: (f) => f.roundTrip[n]?.rate, format: int })
      cols.push({ title: `p50 ms @${n}`, value: (f) => f.roundTrip[n]?.p50Ms, format: fixed(2), lowerIsBetter: true })
      cols.push({ title: `p99 ms @${n}`, value: (f) => f.roundTrip[n]?.p99Ms, format: fixed(2), lowerIsBetter: true })
      cols.push({ title: `CPU µs/rt @${n}`, value: (f) => f.roundTrip[n]?.cpuUsPerRoundTrip, format: fixed(1), lowerIsBetter: true })
    }
  }
  if (o.workloads.includes('handshake')) {
    cols.push({ title: 'handshakes/s', value: (f) => f.handshake?.rate, format: int })
  }
  if (o.workloads.includes('broadcast')) {
    const n = o.broadcastClients
    cols.push({ title: `bcast ms @${n}`, value: (f) => f.broadcast?.completionMs, format: fixed(1), lowerIsBetter: true })
    cols.push({ title: `bcast CPU ms @${n}`, value: (f) => f.broadcast?.cpuMs, format: int, lowerIsBetter: true })
  }
  if (o.workloads.includes('idle')) {
    for (const k of o.idleCounts) cols.push({ title: `KiB/idle conn @${k}`, value: (f) => kib(f.idle[k]?.hopBytesPerConn), format: fixed(2), lowerIsBetter: true })
    for (const k of o.idleCounts) cols.push({ title: `backend MiB @${k}`, value: (f) => (f.idle[k] ? f.idle[k].backendRssBytes / MiB : undefined), format: fixed(1), lowerIsBetter: true })
    const top = o.idleCounts[o.idleCounts.length - 1]
    cols.push({ title: `backend TCP conns @${top}`, value: (f) => f.idle[top]?.backendSockets, format: int, lowerIsBetter: true })
  }
  return cols
}

function kib (bytes: number | undefined): number | undefined {
  return bytes === undefined ? undefined : bytes / 1024
}

function cell (v: number | undefined, format: (v: number) => string): string {
  return v === undefined || !Number.isFinite(v) ? 'n/a' : format(v)
}

/** Rows, one per contender measured, then gatehouse's ratios to each of the others. */
export function tableRows (result: BenchResult): string[][] {
  const cols = columns(result)
  const rows: string[][] = [['contender', ...cols.map((c) => c.title)]]
  for (const name of result.contenders) {
    const f = result.figures[name] as ContenderFigures
    rows.push([name, ...cols.map((c) => cell(c.value(f), c.format))])
  }
  const pairs: Array<[ContenderName, ContenderName]> = [['gatehouse', 'direct'], ['gatehouse', 'nginx'], ['gatehouse', 'socketio'], ['gatehouse-b', 'direct'], ['gatehouse-b', 'nginx'], ['gatehouse-b', 'socketio'], ['gatehouse-b', 'gatehouse'], ['gatehouse-raw', 'direct'], ['gatehouse-raw', 'socketio'], ['gatehouse-raw', 'gatehouse'], ['gatehouse-raw', 'gatehouse-b']]
  for (const [mine, other] of pairs) {
    const gh = result.figures[mine]
    const f = result.figures[other]
    if (!gh || !f) continue
    rows.push([`${mine} ÷ ${other}`, ...cols.map((c) => {
      const a = c.value(gh)
      const b = c.value(f)
      return a === undefined || b === undefined || !Number.isFinite(a / b) ? 'n/a' : `${(a / b).toFixed(2)}×`
    })])
  }
  return rows
}

export function renderTable (result: BenchResult): string {
  const rows = tableRows(result)
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)))
  const line = (r: string[]): string => `| ${r.map((v, i) => (i === 0 ? v.padEnd(widths[i]) : v.padStart(widths[i]))).join(' | ')} |`
  const rule = `|${widths.map((w, i) => (i === 0 ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`
  return [line(rows[0]), rule, ...rows.slice(1).map(line)].join('\n')
}

export interface TargetCheck {
  target: string
  measured: string
  met: boolean
}

/** Issue 5's targets for a gateway build (`gatehouse` or `gatehouse-b`), each from figures of the same run. */
export function evaluateTargets (result: BenchResult, gateway: ContenderName = 'gatehouse'): TargetCheck[] {
  const { figures, options } = result
  const gh = figures[gateway]
  const out: TargetCheck[] = []
  if (!gh) return out
  const ratio = (a: number | undefined, b: number | undefined): number => (a === undefined || b === undefined ? NaN : a / b)
  const x = (r: number): string => `${r.toFixed(2)}×`
  if (options.workloads.includes('throughput')) {
    for (const n of options.clientCounts) {
      const g = gh.roundTrip[n]
      if (figures.nginx) {
        const r = ratio(g?.rate, figures.nginx.roundTrip[n]?.rate)
        out.push({ target: `throughput @${n} clients ≥ 1.0× nginx`, measured: x(r), met: r >= 1.0 })
      }
      if (figures.direct) {
        const r = ratio(g?.rate, figures.direct.roundTrip[n]?.rate)
        out.push({ target: `throughput @${n} clients ≥ 0.6× direct`, measured: x(r), met: r >= 0.6 })
      }
      if (figures.nginx) {
        const r = ratio(g?.p99Ms, figures.nginx.roundTrip[n]?.p99Ms)
        out.push({ target: `p99 latency @${n} clients ≤ 1.5× nginx`, measured: x(r), met: r <= 1.5 })
      }
      // issue 15 item 4
      if (figures.socketio) {
        const r = ratio(g?.rate, figures.socketio.roundTrip[n]?.rate)
        out.push({ target: `throughput @${n} clients ≥ 1.0× socket.io`, measured: x(r), met: r >= 1.0 })
      }
      if (figures.direct && n >= 100) {
        const r = ratio(g?.p99Ms, figures.direct.roundTrip[n]?.p99Ms)
        out.push({ target: `p99 latency @${n} clients ≤ 1.2× direct`, measured: x(r), met: r <= 1.2 })
      }
      if (figures.direct && n === 100) {
        const r = ratio(g?.cpuUsPerRoundTrip, figures.direct.roundTrip[n]?.cpuUsPerRoundTrip)
        out.push({ target: `server CPU per round trip @${n} clients (gateway + backend) ≤ 1.5× direct`, measured: x(r), met: r <= 1.5 })
      }
    }
  }
  if (options.workloads.includes('idle')) {
    const top = options.idleCounts[options.idleCounts.length - 1]
    const per = (gh.idle[top]?.hopBytesPerConn ?? NaN) / 1024
    out.push({ target: `gateway RSS per idle authenticated client @${top} ≤ 8 KiB`, measured: `${per.toFixed(2)} KiB`, met: per <= 8 })
    const low = options.idleCounts[0]
    if (low !== top) {
      const growth = ratio(gh.idle[top]?.backendRssBytes, gh.idle[low]?.backendRssBytes)
      const socketsFlat = gh.idle[top]?.backendSockets === gh.idle[low]?.backendSockets
      out.push({
        target: `backend RSS flat in clients (@${top} ÷ @${low} ≤ 1.10, same TCP connection count)`,
        measured: `${x(growth)}, TCP connections ${gh.idle[low]?.backendSockets} → ${gh.idle[top]?.backendSockets}`,
        met: growth <= 1.1 && socketsFlat
      })
    }
  }
  if (options.workloads.includes('handshake') && figures.direct) {
    const r = ratio(gh.handshake?.rate, figures.direct.handshake?.rate)
    out.push({ target: 'authenticated handshakes/s ≥ 0.7× direct plain handshakes/s', measured: x(r), met: r >= 0.7 })
  }
  return out
}

export function renderTargets (result: BenchResult): string {
  const list = (gateway: ContenderName): string => evaluateTargets(result, gateway).map((t) => `- ${t.met ? 'MET    ' : 'NOT MET'} ${t.target}: ${t.measured}`).join('\n')
  const others: Array<[ContenderName, string]> = [['gatehouse-b', `gatehouse-b (${result.options.gatehouseB ?? ''}${result.options.gatehouseBRaw ? ', backend.encoding "raw"' : ''}${result.options.gatehouseBFlags.length > 0 ? `, node ${result.options.gatehouseBFlags.join(' ')}` : ''})`], ['gatehouse-raw', 'gatehouse-raw (backend.encoding "raw")']]
  const measured = others.filter(([name]) => result.figures[name])
  if (measured.length === 0) return list('gatehouse')
  return [`gatehouse:\n${list('gatehouse')}`, ...measured.map(([name, title]) => `${title}:\n${list(name)}`)].join('\n\n')
}

export function renderConditions (result: BenchResult): string {
  const c = result.conditions
  const o = result.options
  const la = (v: number[]): string => v.map((n) => n.toFixed(2)).join(' ')
  return [
    `- date: ${c.date}; bench took ${c.durationSec} s${o.smoke ? ' (smoke run: tiny load, figures mean nothing)' : ''}`,
    `- machine: ${c.nproc} CPUs (${c.cpu}), ${c.memoryGiB} GiB RAM, ${c.kernel}, open files per process ${c.openFiles}; shared with other work (load average ${la(c.loadAverageBefore)} before, ${la(c.loadAverageAfter)} after)`,
    `- software: gatehouse ${c.gatehouse}${c.gatehouseB ? `; gatehouse-b ${c.gatehouseB}` : ''}; Node ${c.node}, ws ${c.ws}, socket.io ${c.socketIo}${c.nginx ? `, ${c.nginx} (worker_processes ${o.nginxWorkers})` : ''}`,
    '- everything on loopback on the same machine: load generator, contenders and backends share the CPUs',
    `- load generator: ${o.workers} processes; clients send a ${o.payloadBytes}-byte JSON text and wait for its echo before sending again (one message in flight per client, closed loop, so every contender gets the same offered load); each echo is checked byte for byte`,
    `- (a) round trips: ${o.clientCounts.join(' and ')} clients, an unmeasured window of up to 2 s per contender first, then in each run ${o.warmupMs} ms warm-up and ${o.durationMs} ms measured, ${o.runs} runs per contender interleaved, median of runs; latency from a histogram with 3 significant digits; server CPU per round trip = CPU time (every thread's /proc schedstat, in ns) of hop and backend processes over the measured window ÷ its round trips`,
    `- (b) handshakes: ${o.handshakeConcurrency} in flight, each socket dropped once open, an unmeasured warm-up window of up to 1 s per contender, then ${o.handshakeMs} ms per run, ${o.runs} runs, median; every client presents an HS256 JWT signed before the clock starts; only gatehouse verifies it; for socketio a handshake ends at the namespace connect ack (40{"sid":…})`,
    `- (c) idle: ${o.idleCounts.join(' then ')} authenticated idle clients, ${o.idleRuns} runs on fresh processes, median; RSS read from /proc after ${o.settleMs} ms and a full GC in every Node process; per-connection = (RSS now − RSS before any client) ÷ clients; nginx's RSS is master + workers`,
    '- (d) backend: RSS and established TCP connections of the process holding the game end (direct, socketio: the echo server itself; nginx: the echo server behind it; gatehouse: the echo backend behind its one link)',
    `- (e) broadcast: ${o.broadcastClients} clients per contender, all contenders' clients held at once; per run the game end sends one message to every client (direct, nginx: a loop of ws sends in the echo server; socketio: io.emit; gatehouse: one send to all down the link); completion = last client's receipt − send time; server CPU = CPU time (every thread's /proc schedstat, in ns) of hop and backend processes from the send to the last receipt; one unmeasured broadcast first, ${o.runs} runs interleaved, median; every client must get each exactly once`,
    ...(o.workloads.includes('storm') ? [`- (f) reconnect storm: ${o.stormClients.join(' and ')} clients, fresh processes per run, ${o.runs} runs with sides interleaved, median; restart = SIGTERM (gatehouse drains with 1001; the ws echo server closes with 1001) then the same server started on the same port, the clock starting when it is ready; drop = the clients' sockets are cut while the server stays up, the clock starting once the server has let go of all; then every client reconnects at once with its token, a failed connect retried after 20-100 ms; any refusal but 503 is a problem`] : []),
    `- contenders: direct = ws echo server; nginx = reverse proxy (one upstream connection per client) → ws echo server; socketio = socket.io echo server (websocket transport only, each echo event answered with an echo event; clients speak Engine.IO v4/Socket.IO v5 framing over ws and answer its pings; each frame carries 42["echo",…] around the same JSON); gatehouse = gateway (dist/src createGateway, log silent, rate limit raised out of the way) → one link → echo backend answering each message with a send to the same user; gatehouse-raw = the same gateway with backend.encoding "raw" → echo backend answering each TEXT record with a TEXT_SEND record of the same bytes (no JSON on the message path)${o.linkMask === false ? '; every gateway link with backend.mask false (unmasked)' : ''}`
  ].join('\n')
}

/** Every run's figure, so a reader can judge the noise behind each median. */
export function renderRuns (result: BenchResult): string {
  const o = result.options
  const k = (v: number): string => `${(v / 1000).toFixed(1)}k`
  const head = ['contender']
  if (o.workloads.includes('throughput')) for (const n of o.clientCounts) head.push(`rt/s @${n}, each run`)
  if (o.workloads.includes('throughput')) for (const n of o.clientCounts) head.push(`CPU µs/rt @${n}, each run`)
  if (o.workloads.includes('handshake')) head.push('handshakes/s, each run')
  if (o.workloads.includes('broadcast')) head.push(`bcast ms / CPU ms @${o.broadcastClients}, each run`)
  if (o.workloads.includes('idle')) head.push(`KiB/idle conn @${o.idleCounts[o.idleCounts.length - 1]}, each run`)
  const rows = result.contenders.map((name) => {
    const f = result.figures[name] as ContenderFigures
    const row: string[] = [name]
    if (o.workloads.includes('throughput')) for (const n of o.clientCounts) row.push((f.roundTrip[n]?.runs ?? []).map((r) => k(r.rate)).join(' '))
    if (o.workloads.includes('throughput')) for (const n of o.clientCounts) row.push((f.roundTrip[n]?.runs ?? []).map((r) => r.cpuUsPerRoundTrip.toFixed(1)).join(' '))
    if (o.workloads.includes('handshake')) row.push((f.handshake?.runs ?? []).map((r) => k(r.rate)).join(' '))
    if (o.workloads.includes('broadcast')) row.push((f.broadcast?.runs ?? []).map((r) => `${r.completionMs.toFixed(0)}/${r.cpuMs}`).join(' '))
    if (o.workloads.includes('idle')) row.push((f.idle[o.idleCounts[o.idleCounts.length - 1]]?.runs ?? []).map((r) => (r.hopBytesPerConn / 1024).toFixed(2)).join(' '))
    return row
  })
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n')
}

export function renderMarkdown (result: BenchResult, svgFile?: string): string {
  const problems = result.problems.length > 0 ? `\n## Problems seen during the run\n\n${result.problems.map((p) => `- ${p}`).join('\n')}\n` : ''
  const skipped = result.skipped.length > 0 ? `\n${result.skipped.map((s) => `- ${s.name} skipped: ${s.why}`).join('\n')}\n` : ''
  return `# Gatehouse bench results

Generated by \`npm run bench\` (bench/main.ts). Each figure is the median of
its runs; ratios compare contenders measured in the same run.

${renderTable(result)}
${skipped}
Columns: \`rt/s @N\` round trips per second with N clients; \`p50/p99 ms\`
round-trip latency; \`bcast ms / CPU ms @N\` time until the last of N clients has
one message its server sent to all, and the server processes' CPU time for it; \`handshakes/s\` completed WebSocket handshakes (JWT
verified by gatehouse only); \`KiB/idle conn @N\` RSS growth of the hop (the
proxy or gateway; for direct and socketio, the echo server) per idle client; \`backend\`
RSS and established TCP connections of the process behind the hop.

${result.storm ? `\n## Reconnect storm\n\n${renderStorm(result.storm).join('\n')}\n\nTime until every client is back after its server went away, from when the new server was ready (restart) or the clients were dropped (drop); for gatehouse in brackets until its backend had every \`open\`, which is what the ratios use (target ≥ 0.8, issue 15).\n` : ''}
## Issue-5 targets

${renderTargets(result)}
${svgFile ? `\n![throughput and p99 latency per contender](${svgFile})\n` : ''}
## Every run

In run order (contenders interleaved, the order rotating each run):

${renderRuns(result)}

## Conditions

${renderConditions(result)}
${problems}`
}
