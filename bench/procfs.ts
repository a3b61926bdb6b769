/** What /proc says about a process: resident memory and open sockets (Linux only). */
import { readFileSync, readdirSync, readlinkSync } from 'node:fs'

/** Resident set size in bytes (VmRSS), or 0 when the process is gone. */
export function rssBytes (pid: number): number {
  try {
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return match ? Number(match[1]) * 1024 : 0
  } catch {
    return 0
  }
}

/** Summed RSS of several processes (nginx's master and workers). */
export function totalRss (pids: readonly number[]): number {
  return pids.reduce((sum, pid) => sum + rssBytes(pid), 0)
}

/**
 * Established TCP connections held by `pid`: its socket inodes matched
 * against /proc/PID/net/tcp{,6} (listeners and the IPC channel do not count).
 */
export function tcpConnections (pid: number): number {
  const inodes = new Set<string>()
  let fds: string[]
  try {
    fds = readdirSync(`/proc/${pid}/fd`)
  } catch {
    return 0
  }
  for (const fd of fds) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))
      if (match) inodes.add(match[1])
    } catch {}
  }
  // /proc/net/tcp is read in pages: a table that changes between two reads can list a socket twice or skip one,
  // so count by inode, and read again until two readings agree
  let last = establishedAmong(pid, inodes)
  for (let tries = 0; tries < 5; tries++) {
    const now = establishedAmong(pid, inodes)
    if (now === last) return now
    last = now
  }
  return last
}

function establishedAmong (pid: number, inodes: Set<string>): number {
  const established = new Set<string>()
  for (const table of ['tcp', 'tcp6']) {
    let text: string
    try {
      text = readFileSync(`/proc/${pid}/net/${table}`, 'utf8')
    } catch {
      continue
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/)
      // st 01 is ESTABLISHED; field 9 is the inode
      if (fields.length > 9 && fields[3] === '01' && inodes.has(fields[9])) established.add(fields[9])
    }
  }
  return established.size
}

/** Direct children of `pid`, from each process's parent id. */
export function childPids (pid: number): number[] {
  const out: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      // the command name in field 2 may hold spaces; fields after its ")" are fixed
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      if (ppid === pid) out.push(Number(entry))
    } catch {}
  }
  return out
}

/**
 * CPU time in ms summed over `pids`, 0 for a process that is gone: each
 * thread's time on a CPU from /proc/PID/task/TID/schedstat (nanoseconds),
 * so a window of 100 ms is not read in 10 ms ticks; /proc/PID/stat's ticks
 * where schedstat is missing.
 */
export function cpuMs (pids: readonly number[]): number {
  let ms = 0
  for (const pid of new Set(pids)) ms += schedstatMs(pid) ?? statTicks(pid) * 10
  return ms
}

function schedstatMs (pid: number): number | undefined {
  let ns = 0
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0])
  } catch {
    return undefined
  }
  return Number.isFinite(ns) ? ns / 1e6 : undefined
}

function statTicks (pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // fields after the command name's ")": utime and stime are the 12th and 13th
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return Number(fields[11]) + Number(fields[12])
  } catch {
    return 0
  }
}
