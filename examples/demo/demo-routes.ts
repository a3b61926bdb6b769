/**
 * The demo's own HTTP routes, added to the gateway's fastify instance by the
 * demo entry only (never by the CLI): the page, its scripts, and the
 * demo-token route. Every file is read once at start-up, so no request path
 * ever reaches the file system.
 */
import { readFileSync, readdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import { PLAYER_NAME, type DemoTokenIssuer } from './demo-token.js'

interface Asset {
  type: string
  body: Buffer
}

const here = dirname(fileURLToPath(import.meta.url))
/** The page and stylesheet stay in the source tree; the scripts are the compiled browser modules beside this file. */
const PUBLIC_DIR = join(here, '..', '..', '..', 'examples', 'demo', 'public')
const BROWSER_DIR = join(here, 'browser')
/** gatehouse-client as the root build compiles it (src/client). */
const CLIENT_DIR = join(here, '..', '..', 'src', 'client')

function assets (): Map<string, Asset> {
  const html = { type: 'text/html; charset=utf-8', body: readFileSync(join(PUBLIC_DIR, 'index.html')) }
  const map = new Map<string, Asset>([
    ['/', html],
    ['/demo/style.css', { type: 'text/css; charset=utf-8', body: readFileSync(join(PUBLIC_DIR, 'style.css')) }]
  ])
  let scripts: string[]
  try {
    scripts = readdirSync(BROWSER_DIR).filter((name) => name.endsWith('.js'))
  } catch {
    throw new Error(`the browser client is not built (${BROWSER_DIR}): run npm run build`)
  }
  for (const name of scripts) map.set(`/demo/js/${name}`, { type: 'text/javascript; charset=utf-8', body: readFileSync(join(BROWSER_DIR, name)) })
  // the browser client's modules, which the page's import map names `gatehouse-client`
  for (const name of readdirSync(CLIENT_DIR).filter((file) => file.endsWith('.js'))) {
    map.set(`/demo/vendor/gatehouse-client/${name}`, { type: 'text/javascript; charset=utf-8', body: readFileSync(join(CLIENT_DIR, name)) })
  }
  return map
}

export async function demoRoutes (app: FastifyInstance, { tokens }: { tokens: DemoTokenIssuer }): Promise<void> {
  for (const [path, asset] of assets()) {
    app.get(path, async (_request, reply) => reply.type(asset.type).header('cache-control', 'no-cache').send(asset.body))
  }

  app.post('/demo/token', {
    schema: {
      body: {
        type: 'object',
        required: ['name'],
        additionalProperties: false,
        properties: { name: { type: 'string', pattern: PLAYER_NAME.source } }
      }
    }
  }, async (request, reply) => {
    const { name } = request.body as { name: string }
    // the token itself is never logged: only who asked
    app.log.info({ user: name }, 'demo token issued')
    return reply.header('cache-control', 'no-store').send({ user: name, ...tokens.issue(name) })
  })
}
