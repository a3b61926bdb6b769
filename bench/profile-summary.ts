/**
 * `node dist/bench/profile-summary.js DIR|FILE.cpuprofile [TOP]`: where the
 * gateway's CPU time went in a `--cpu-prof` profile (BENCH_CPU_PROF=DIR
 * npm run bench). Prints self time per function, self time per package or
 * source area, and inclusive time of the gateway's own functions, as a
 * share of the busy (non-idle) time.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'

interface CallFrame { functionName: string, url: string, lineNumber: number }
interface ProfileNode { id: number, callFrame: CallFrame, children?: number[] }
interface CpuProfile { nodes: ProfileNode[], samples: number[], timeDeltas: number[] }

export interface Hotspot { name: string, where: string, ms: number, share: number }
export interface ProfileSummary { busyMs: number, idleMs: number, self: Hotspot[], areas: Hotspot[], inclusive: Hotspot[] }

/** The source area a frame belongs to: a package, the gateway's own tree, Node's internals, or V8's pseudo-frames. */
export function area (url: string, name: string): string {
  if (url === '') return name.startsWith('(') ? name : '(native)'
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[1] === undefined ? url.slice(5) : url.slice(5).split('/').slice(0, 2).join('/')}`
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (pkg) return pkg[1]
  const own = /\/dist\/((?:src|routes|protocol|bench)(?:\/[^/]+)?)/.exec(url)
  return own ? `gatehouse ${own[1].replace(/\.js$/, '')}` : url
}

function where (frame: CallFrame): string {
  const file = frame.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/dist\//, 'dist/')
  return file === '' ? '' : `${file}:${frame.lineNumber + 1}`
}

export function summarise (profiles: CpuProfile[], top = 25): ProfileSummary {
  const self = new Map<string, Hotspot>()
  const areas = new Map<string, Hotspot>()
  const inclusive = new Map<string, Hotspot>()
  let busy = 0
  let idle = 0
  for (const profile of profiles) {
    const byId = new Map(profile.nodes.map((n) => [n.id, n]))
    const parent = new Map<number, number>()
    for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
    profile.samples.forEach((id, i) => {
      const ms = (profile.timeDeltas[i] ?? 0) / 1000
      const node = byId.get(id)
      if (!node) return
      const frame = node.callFrame
      if (frame.functionName === '(idle)') {
        idle += ms
        return
      }
      busy += ms
      const name = frame.functionName || '(anonymous)'
      const key = `${name} ${where(frame)}`
      const s = self.get(key) ?? { name, where: where(frame), ms: 0, share: 0 }
      s.ms += ms
      self.set(key, s)
      const a = area(frame.url, frame.functionName)
      const as = areas.get(a) ?? { name: a, where: '', ms: 0, share: 0 }
      as.ms += ms
      areas.set(a, as)
      // inclusive: every distinct gateway function on this sample's stack
      const seen = new Set<string>()
      for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
        const f = (byId.get(cur) as ProfileNode).callFrame
        if (!/\/dist\/(src|routes|protocol)\//.test(f.url)) continue
        const k = `${f.functionName || '(anonymous)'} ${where(f)}`
        if (seen.has(k)) continue
        seen.add(k)
        const h = inclusive.get(k) ?? { name: f.functionName || '(anonymous)', where: where(f), ms: 0, share: 0 }
        h.ms += ms
        inclusive.set(k, h)
      }
    })
  }
  const rank = (m: Map<string, Hotspot>): Hotspot[] => [...m.values()]
    .map((h) => ({ ...h, share: busy > 0 ? h.ms / busy : 0 }))
    .sort((a, b) => b.ms - a.ms)
    .slice(0, top)
  return { busyMs: busy, idleMs: idle, self: rank(self), areas: rank(areas), inclusive: rank(inclusive) }
}

export function renderSummary (s: ProfileSummary): string {
  const pct = (h: Hotspot): string => `${(h.share * 100).toFixed(1).padStart(5)}%`
  const rows = (list: Hotspot[]): string => list.map((h) => `  ${pct(h)}  ${h.ms.toFixed(0).padStart(7)} ms  ${h.name}${h.where ? `  (${h.where})` : ''}`).join('\n')
  return [
    `busy ${s.busyMs.toFixed(0)} ms, idle ${s.idleMs.toFixed(0)} ms (${(s.busyMs / Math.max(1, s.busyMs + s.idleMs) * 100).toFixed(0)}% busy); shares are of busy time`,
    '', 'self time by area:', rows(s.areas),
    '', 'self time by function:', rows(s.self),
    '', 'inclusive time of the gateway\'s own functions (src/, routes/, protocol/):', rows(s.inclusive)
  ].join('\n')
}

function profilesAt (path: string): CpuProfile[] {
  const files = statSync(path).isDirectory()
    ? readdirSync(path).filter((f) => f.endsWith('.cpuprofile')).map((f) => join(path, f))
    : [path]
  if (files.length === 0) throw new Error(`no .cpuprofile in ${path}`)
  return files.map((f) => JSON.parse(readFileSync(f, 'utf8')) as CpuProfile)
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/^.*\/dist\//, '/dist/'))) {
  const [path, top] = process.argv.slice(2)
  if (!path) {
    process.stderr.write('usage: node dist/bench/profile-summary.js DIR|FILE.cpuprofile [TOP]\n')
    process.exit(2)
  }
  process.stdout.write(`${renderSummary(summarise(profilesAt(path), Number(top ?? 25)))}\n`)
}
