/**
 * The *nginx* contender: Debian's nginx as a per-connection WebSocket reverse
 * proxy, configured in a temp dir and run in the foreground (`-p`/`-c`/`-e`),
 * its pid file and logs in that dir too.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { onFreePort } from '../test/helpers/ports.js'
import { childPids } from './procfs.js'

export const NGINX_INSTALL_HINT = 'sudo apt-get update && sudo apt-get install -y nginx-light   (or set NGINX=/path/to/nginx)'

export type NginxLookup = { path: string } | { missing: string }

function which (name: string): string | undefined {
  const found = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' })
  const path = found.stdout.trim()
  return found.status === 0 && path !== '' ? path : undefined
}

function findNginx (): string | undefined {
  if (process.env.NGINX) return existsSync(process.env.NGINX) ? process.env.NGINX : undefined
  return ['/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/local/nginx/sbin/nginx'].find((p) => existsSync(p)) ?? which('nginx')
}

/**
 * Finds nginx; when it is missing and `install` is set, installs Debian's
 * nginx-light with apt-get (as root; otherwise says how).
 */
export function ensureNginx (install: boolean, say: (line: string) => void): NginxLookup {
  const found = findNginx()
  if (found) return { path: found }
  if (!install) return { missing: `nginx not found; install it with: ${NGINX_INSTALL_HINT}` }
  if (process.getuid?.() !== 0 || !which('apt-get')) return { missing: `nginx not found and this is not root with apt-get; install it with: ${NGINX_INSTALL_HINT}` }
  say('nginx not found: installing nginx-light with apt-get (takes a minute)')
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  let result = spawnSync('apt-get', ['install', '-y', '--no-install-recommends', 'nginx-light'], { env, stdio: 'inherit' })
  if (result.status !== 0) {
    spawnSync('apt-get', ['update'], { env, stdio: 'inherit' })
    result = spawnSync('apt-get', ['install', '-y', '--no-install-recommends', 'nginx-light'], { env, stdio: 'inherit' })
  }
  const installed = findNginx()
  return installed ? { path: installed } : { missing: `apt-get install nginx-light failed; install it with: ${NGINX_INSTALL_HINT}` }
}

async function accepts (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => resolve(false))
  })
}

export interface NginxProxy {
  port: number
  /** Master and workers: their summed RSS is the proxy's memory. */
  pids (): number[]
  stop (): Promise<void>
}

export function nginxConfig (dir: string, port: number, upstreamPort: number, workers: string): string {
  return `# written by the gatehouse bench: a per-connection WebSocket reverse proxy
daemon off;
master_process on;
worker_processes ${workers};
# a process here may hold ~20,000 open files; each proxied client holds two
worker_rlimit_nofile 19500;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;

events {
  worker_connections 19000;
  use epoll;
}

http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;

  map $http_upgrade $connection_upgrade {
    default upgrade;
    ''      close;
  }

  upstream echo {
    server 127.0.0.1:${upstreamPort};
  }

  server {
    # reuseport: the kernel spreads connections over the workers evenly
    listen 127.0.0.1:${port} reuseport backlog=4096;
    location / {
      proxy_pass http://echo;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_read_timeout 3600s;
      proxy_send_timeout 3600s;
    }
  }
}
`
}

/** nginx masters still running: stopped (with their temp dirs) if the bench exits early. */
const running = new Map<ChildProcess, string>()
process.on('exit', () => {
  for (const [proc, dir] of running) {
    proc.kill('SIGTERM')
    rmSync(dir, { recursive: true, force: true })
  }
})

/** nginx must be told its port: on EADDRINUSE (another process took it first) it starts again on another. */
export async function startNginx (binary: string, upstreamPort: number, workers: string): Promise<NginxProxy> {
  return await onFreePort(async (port) => await startNginxOn(binary, port, upstreamPort, workers))
}

async function startNginxOn (binary: string, port: number, upstreamPort: number, workers: string): Promise<NginxProxy> {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-nginx-'))
  const conf = join(dir, 'nginx.conf')
  writeFileSync(conf, nginxConfig(dir, port, upstreamPort, workers))
  const proc: ChildProcess = spawn(binary, ['-p', dir, '-c', conf, '-e', join(dir, 'error.log')], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  proc.stderr?.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  let exited = false
  const exit = new Promise<void>((resolve) => proc.once('exit', () => { exited = true; resolve() }))
  running.set(proc, dir)
  const cleanup = (): void => {
    running.delete(proc)
    rmSync(dir, { recursive: true, force: true })
  }
  for (let i = 0; i < 200 && !(await accepts(port)); i++) {
    if (exited) {
      cleanup()
      throw new Error(`nginx exited at start: ${stderr.trim()}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  const master = proc.pid as number
  return {
    port,
    pids: () => [master, ...childPids(master)],
    async stop () {
      if (!exited) {
        proc.kill('SIGTERM') // fast shutdown: open WebSockets would hold a graceful one forever
        const timer = setTimeout(() => proc.kill('SIGKILL'), 5000)
        await exit
        clearTimeout(timer)
      }
      cleanup()
    }
  }
}
