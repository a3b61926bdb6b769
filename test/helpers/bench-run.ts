/** A bench script (dist/bench/<name>.js) run to its end as a child process, for the smoke tests. */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

export interface BenchRun { code: number | null, stdout: string, stderr: string }

/** Runs bench/<name>.js with `env` added to this process's environment; resolves once it has exited. */
export async function runBench (name: string, env: NodeJS.ProcessEnv): Promise<BenchRun> {
  const script = fileURLToPath(new URL(`../../bench/${name}.js`, import.meta.url))
  const child = spawn(process.execPath, [script], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
  return { code, stdout, stderr }
}
