/** A dependency-free SVG bar chart: round-trip throughput and p99 latency per contender, per client count. */
import type { BenchResult } from './bench.js'
import type { ContenderName } from './contenders.js'

const COLORS: Record<ContenderName, string> = { direct: '#6b7280', nginx: '#16a34a', socketio: '#ea580c', gatehouse: '#2563eb', 'gatehouse-b': '#9333ea', 'gatehouse-raw': '#0891b2' }

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

/** A round axis maximum and its tick step. */
function niceScale (max: number): { top: number, step: number } {
  if (!(max > 0)) return { top: 1, step: 0.25 }
  const raw = max / 4
  const mag = 10 ** Math.floor(Math.log10(raw))
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) as number
  return { top: Math.ceil(max / step) * step, step }
}

function fmt (v: number): string {
  if (v === 0) return '0'
  if (v >= 10000) return `${(v / 1000).toFixed(0)}k`
  if (v >= 1000) return `${(v / 1000).toFixed(1)}k`
  if (v >= 10) return v.toFixed(0)
  return v.toFixed(2)
}

interface Panel { title: string, unit: string, value (name: ContenderName, clients: number): number | undefined }

function panel (x0: number, width: number, height: number, p: Panel, result: BenchResult): string {
  const counts = result.options.clientCounts
  const names = result.contenders
  const values = counts.flatMap((n) => names.map((c) => p.value(c, n) ?? 0))
  const { top, step } = niceScale(Math.max(...values))
  const left = x0 + 60
  const plotW = width - 80
  const plotTop = 50
  const plotH = height - 110
  const y = (v: number): number => plotTop + plotH - (v / top) * plotH
  const out: string[] = [`<text x="${x0 + width / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${esc(p.title)}</text>`]
  for (let v = 0; v <= top + step / 2; v += step) {
    out.push(`<line x1="${left}" x2="${left + plotW}" y1="${y(v)}" y2="${y(v)}" stroke="#e5e7eb"/>`)
    out.push(`<text x="${left - 6}" y="${y(v) + 4}" text-anchor="end" font-size="11" fill="#374151">${fmt(v)}</text>`)
  }
  out.push(`<text x="${x0 + 14}" y="${plotTop + plotH / 2}" font-size="11" fill="#374151" text-anchor="middle" transform="rotate(-90 ${x0 + 14} ${plotTop + plotH / 2})">${esc(p.unit)}</text>`)
  const groupW = plotW / counts.length
  const barW = Math.min(60, (groupW * 0.8) / names.length)
  counts.forEach((n, gi) => {
    const gx = left + gi * groupW + (groupW - barW * names.length) / 2
    names.forEach((c, ci) => {
      const v = p.value(c, n)
      if (v === undefined || !Number.isFinite(v)) return
      const bx = gx + ci * barW
      out.push(`<rect x="${bx + 2}" y="${y(v)}" width="${barW - 4}" height="${plotTop + plotH - y(v)}" fill="${COLORS[c]}"><title>${esc(`${c}, ${n} clients: ${fmt(v)} ${p.unit}`)}</title></rect>`)
      out.push(`<text x="${bx + barW / 2}" y="${y(v) - 4}" text-anchor="middle" font-size="10">${fmt(v)}</text>`)
    })
    out.push(`<text x="${left + gi * groupW + groupW / 2}" y="${plotTop + plotH + 18}" text-anchor="middle" font-size="12">${n} clients</text>`)
  })
  out.push(`<line x1="${left}" x2="${left + plotW}" y1="${plotTop + plotH}" y2="${plotTop + plotH}" stroke="#111827"/>`)
  return out.join('\n')
}

export function renderSvg (result: BenchResult): string {
  const width = 960
  const height = 400
  const rt = (c: ContenderName, n: number): number | undefined => result.figures[c]?.roundTrip[n]?.rate
  const p99 = (c: ContenderName, n: number): number | undefined => result.figures[c]?.roundTrip[n]?.p99Ms
  const legend = result.contenders.map((c, i) => {
    const x = width / 2 - (result.contenders.length * 110) / 2 + i * 110
    return `<rect x="${x}" y="${height - 28}" width="14" height="14" fill="${COLORS[c]}"/><text x="${x + 20}" y="${height - 16}" font-size="13">${c}</text>`
  }).join('\n')
  const c = result.conditions
  return `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">
<rect width="100%" height="100%" fill="#ffffff"/>
${panel(0, width / 2, height, { title: 'Round-trip throughput (higher is better)', unit: 'round trips/s', value: rt }, result)}
${panel(width / 2, width / 2, height, { title: 'p99 round-trip latency (lower is better)', unit: 'ms', value: p99 }, result)}
${legend}
<text x="${width - 8}" y="${height - 6}" text-anchor="end" font-size="9" fill="#6b7280">${esc(`${c.date.slice(0, 10)}, ${c.nproc} CPUs, Node ${c.node}, median of ${result.options.runs} runs`)}</text>
</svg>
`
}
