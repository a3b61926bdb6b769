/**
 * The bench's smoke run (issue 5, point 3): `npm run bench`'s entry point
 * with tiny load for a few seconds, so the bench cannot rot. It asserts what
 * the bench produced, never how fast anything was.
 */
import t from 'tap'
import { runBench } from './helpers/bench-run.js'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import type { BenchResult } from '../bench/bench.js'


t.setTimeout(180_000)

t.test('a smoke run measures every contender and writes the report', async (t) => {
  const dir = t.testdir()
  const { code, stdout, stderr } = await runBench('main', { BENCH_SMOKE: '1', BENCH_OUT: dir, BENCH_IDLE: '100,200' })
  t.equal(code, 0, `bench exits 0\n${stderr.slice(-2000)}`)

  const result = JSON.parse(readFileSync(`${dir}/results.json`, 'utf8')) as BenchResult
  t.ok(result.options.smoke, 'smoke options were used')
  t.ok(result.contenders.includes('direct'), 'direct ran')
  t.ok(result.contenders.includes('socketio'), 'socketio ran')
  t.ok(result.contenders.includes('gatehouse'), 'gatehouse ran')
  if (result.contenders.includes('nginx')) {
    t.same(result.skipped, [], 'nothing skipped')
  } else {
    t.match(result.skipped, [{ name: 'nginx', why: /apt-get install -y nginx-light/ }], 'a skipped nginx says how to install it')
    t.match(stderr, /nginx contender skipped/, 'and the output says so')
  }
  t.same(result.problems, [], 'every echo came back intact, none missing, no socket closed under load')

  const { clientCounts, idleCounts } = result.options
  for (const name of result.contenders) {
    const f = result.figures[name]
    if (!f) {
      t.fail(`${name} has figures`)
      continue
    }
    for (const n of clientCounts) {
      const rt = f.roundTrip[n]
      t.ok(rt.rate > 0, `${name} @${n}: round-trip rate is positive`)
      t.ok(rt.p50Ms > 0 && rt.p99Ms >= rt.p50Ms, `${name} @${n}: 0 < p50 ≤ p99`)
      t.equal(rt.runs.length, result.options.runs, `${name} @${n}: one result per run`)
      t.ok(rt.runs.every((r) => Number.isFinite(r.cpuUsPerRoundTrip) && r.cpuUsPerRoundTrip >= 0), `${name} @${n}: server CPU per round trip read in every run`)
      if (name === 'gatehouse') t.ok(rt.runs.every((r) => (r.eventsPerLinkFrame ?? 0) >= 1), `${name} @${n}: messages per link frame counted in every run`)
    }
    t.ok((f.handshake?.rate ?? 0) > 0, `${name}: handshake rate is positive`)
    // every client got each broadcast exactly once: otherwise result.problems above is not empty
    t.equal(f.broadcast?.clients, result.options.broadcastClients, `${name}: broadcast to every client held`)
    t.equal(f.broadcast?.runs.length, result.options.runs, `${name}: one broadcast figure per run`)
    t.ok(f.broadcast?.runs.every((r) => r.completionMs > 0 && r.cpuMs >= 0), `${name}: each broadcast completed after it was sent`)
    t.equal(f.handshake?.runs.every((r) => r.failed === 0), true, `${name}: no handshake failed`)
    for (const k of idleCounts) {
      const idle = f.idle[k]
      t.ok(idle.hopRssBytes > 0 && idle.backendRssBytes > 0, `${name} @${k} idle: RSS read`)
      // memory per connection is the bench's to report, not a test's to assert: a GC in the window can make it negative
      t.ok(Number.isFinite(idle.hopBytesPerConn), `${name} @${k} idle: a per-connection figure was computed`)
    }
  }
  // (d) what the backend holds: a socket per client behind direct and nginx, one link behind gatehouse
  for (const k of idleCounts) {
    t.equal(result.figures.direct?.idle[k].backendSockets, k, `direct's echo server holds ${k} connections`)
    t.equal(result.figures.socketio?.idle[k].backendSockets, k, `the socket.io server holds ${k} connections`)
    t.equal(result.figures.gatehouse?.idle[k].backendSockets, 1, 'gatehouse\'s backend holds one link')
    if (result.figures.nginx) t.equal(result.figures.nginx.idle[k].backendSockets, k, `the echo server behind nginx holds ${k} connections`)
  }

  // (f) the reconnect storm: every side came back in every mode (a client not back, or refused, is in result.problems)
  const stormClients = result.options.stormClients[0]
  for (const mode of ['restart', 'drop'] as const) {
    const sides = result.storm?.[mode]?.[stormClients]
    for (const side of ['direct', 'gatehouse', 'gatehouse, no cache'] as const) {
      const runs = sides?.[side]?.runs ?? []
      t.equal(runs.length, result.options.runs, `storm (${mode}), ${side}: one figure per run`)
      t.ok(runs.every((r) => r.backMs > 0), `storm (${mode}), ${side}: every client came back after the start`)
      if (side !== 'direct') t.ok(runs.every((r) => r.opensMs !== undefined), `storm (${mode}), ${side}: every open reached the backend`)
      if (mode === 'restart') t.ok(runs.every((r) => r.closeCodes[1001] === stormClients), `storm (restart), ${side}: every client was closed with 1001`)
    }
  }
  t.match(stdout, new RegExp(`\\| restart \\| ${stormClients} \\|`), 'the storm table is printed')

  // the printed table: a header, then a row per contender with a figure in every column
  const lines = stdout.split('\n').filter((l) => l.startsWith('| '))
  const header = lines[0].split('|').map((s) => s.trim()).filter(Boolean)
  t.equal(header[0], 'contender', 'the table\'s first column is the contender')
  for (const name of result.contenders) {
    const row = lines.find((l) => l.startsWith(`| ${name} `))
    t.ok(row, `table has a row for ${name}`)
    const cells = (row ?? '').split('|').map((s) => s.trim()).filter(Boolean).slice(1)
    t.equal(cells.length, header.length - 1, `${name}: a cell per column`)
    t.ok(cells.every((c) => Number.isFinite(Number(c.replace(/,/g, '')))), `${name}: every cell is a number (${cells.join(' ')})`)
  }
  t.ok(lines.some((l) => l.startsWith('| gatehouse ÷ direct')), 'ratios to direct')
  t.ok(lines.some((l) => l.startsWith('| gatehouse ÷ socketio')), 'ratios to socket.io')
  t.match(stdout, /socket\.io 4\.8\.\d+/, 'the conditions name the socket.io version')
  t.match(stdout, /targets \(issue 5\):/, 'the targets are printed')

  const md = readFileSync(`${dir}/results.md`, 'utf8')
  t.match(md, /\| contender/, 'results.md holds the table')
  t.match(md, /Node v\d+/, 'and the conditions')
  t.ok(existsSync(`${dir}/results.svg`), 'the plot is written')
  const svg = readFileSync(`${dir}/results.svg`, 'utf8')
  t.match(svg, /^<\?xml[\s\S]*<svg[\s\S]*<\/svg>\s*$/, 'a whole SVG document')
  for (const name of result.contenders) t.match(svg, new RegExp(`<title>${name}, `), `the plot has ${name}'s bars`)
})

t.test('a bad knob stops the bench before any load, naming the knob and what it wanted', async (t) => {
  for (const [knob, value, expected] of [
    ['BENCH_CLIENTS', '10,lots', /BENCH_CLIENTS must be a positive number, got "lots"/],
    ['BENCH_RUNS', '-1', /BENCH_RUNS must be a positive number, got "-1"/],
    ['BENCH_CONTENDERS', 'direct,haproxy', /BENCH_CONTENDERS: haproxy is not one of/]
  ] as const) {
    const dir = t.testdir()
    const { code, stderr } = await runBench('main', { BENCH_SMOKE: '1', BENCH_OUT: dir, BENCH_IDLE: '100,200', [knob]: value })
    t.not(code, 0, `${knob}=${value}: exits non-zero`)
    t.match(stderr, expected, `${knob}=${value}: says why`)
    t.same(readdirSync(dir), [], `${knob}=${value}: writes no results`)
  }
})
