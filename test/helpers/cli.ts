/** The real `gatehouse` CLI as a child process, for what only a process can show: exit codes, signals, stderr. */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Inbox } from './waiter.js'

export const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url))

export interface CliRun {
  child: ChildProcess
  /** stdout log lines, parsed. */
  lines: Inbox<Record<string, unknown>>
  stderr (): string
  exited: Promise<number | null>
}

/** Writes `config` (an object, or raw text) to a temp file and starts the CLI on it. */
export function runCli (config: unknown, env: NodeJS.ProcessEnv = {}, args: string[] = []): CliRun {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-cli-'))
  const file = join(dir, 'gateway.config.json')
  writeFileSync(file, typeof config === 'string' ? config : JSON.stringify(config))
  const child = spawn(process.execPath, [CLI, '--config', file, ...args], { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  const lines = new Inbox<Record<string, unknown>>()
  let out = ''
  let err = ''
  child.stdout?.on('data', (chunk: Buffer) => {
    out += chunk.toString()
    let at: number
    while ((at = out.indexOf('\n')) >= 0) {
      const line = out.slice(0, at)
      out = out.slice(at + 1)
      try { lines.push(JSON.parse(line)) } catch { lines.push({ msg: line }) }
    }
  })
  child.stderr?.on('data', (chunk: Buffer) => { err += chunk.toString() })
  const exited = once(child, 'exit').then(([code]) => code as number | null)
  return { child, lines, stderr: () => err, exited }
}
