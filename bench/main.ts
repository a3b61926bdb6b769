/**
 * `npm run bench`: runs every contender and workload, prints one table with
 * ratios and the issue-5 targets, writes bench/results.md and
 * bench/results.svg (and the raw runs in bench/results.json). `BENCH_SMOKE=1` (npm run bench:smoke) is a few seconds
 * of tiny load written to a temp dir. Knobs: see KNOBS in options.ts.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { runBench } from './bench.js'
import { KNOBS, optionsFromEnv } from './options.js'
import { renderConditions, renderMarkdown, renderTable, renderTargets } from './report.js'
import { renderSvg } from './svg.js'
import { renderStorm } from './storm.js'

/** bench/ in the source tree (this file runs from dist/bench/). */
const SOURCE_DIR = fileURLToPath(new URL('../../bench/', import.meta.url))

// interrupted: exit normally, so 'exit' handlers stop nginx; Node children exit when their IPC channel closes
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130))

const options = optionsFromEnv()
const say = (line: string): void => { process.stderr.write(`bench: ${line}\n`) }
say(`contenders ${options.contenders.join(', ')}; workloads ${options.workloads.join(', ')}${options.smoke ? ' (smoke)' : ''}`)
say(`knobs: ${KNOBS.replace(/\n/g, ' ')}`)

const result = await runBench(options, say)
const outDir = process.env.BENCH_OUT ?? (options.smoke ? mkdtempSync(join(tmpdir(), 'gatehouse-bench-smoke-')) : SOURCE_DIR)
mkdirSync(outDir, { recursive: true })
writeFileSync(join(outDir, 'results.svg'), renderSvg(result))
writeFileSync(join(outDir, 'results.md'), renderMarkdown(result, 'results.svg'))
// every run's raw figures, for anyone who wants more than medians
writeFileSync(join(outDir, 'results.json'), `${JSON.stringify(result, null, 2)}\n`)

const out = [
  '',
  renderTable(result),
  ...result.skipped.map((s) => `(${s.name} skipped: ${s.why})`),
  ...(result.storm ? ['', 'reconnect storm (ms until all back; gatehouse: until every open reached the backend):', ...renderStorm(result.storm)] : []),
  '',
  'targets (issue 5):',
  renderTargets(result),
  '',
  renderConditions(result),
  ...(result.problems.length > 0 ? ['', 'problems:', ...result.problems.map((p) => `- ${p}`)] : []),
  '',
  `wrote ${join(outDir, 'results.md')}, results.svg and results.json`
]
process.stdout.write(`${out.join('\n')}\n`)
if (options.cpuProfDir) say(`gateway CPU profile in ${options.cpuProfDir}; summarise with: node dist/bench/profile-summary.js ${options.cpuProfDir}`)
