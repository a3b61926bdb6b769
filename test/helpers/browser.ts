/** Chromium for the browser tests, and the browser client served to it by the gateway's own app. */
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join, normalize } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
// playwright gives every launch a fresh temporary profile (it refuses --user-data-dir with launch())
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic', '--no-first-run']

/** Where the page lives: served by the gateway's app itself (an app may add routes), so same origin, loopback. */
export const PAGE = '/__page'

const CLIENT_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'client')

/** Adds an empty page titled `title` at PAGE/, and the client's built modules at PAGE/client/<file> (nothing outside their folder). */
export function serveClientPage (app: FastifyInstance, title: string): void {
  app.get(`${PAGE}/`, async (_request, reply) => await reply.type('text/html').send(`<!doctype html><title>${title}</title>`))
  app.get(`${PAGE}/client/:file`, async (request, reply) => {
    const { file } = request.params as { file: string }
    const path = normalize(join(CLIENT_DIR, file))
    if (!path.startsWith(CLIENT_DIR) || !existsSync(path)) return await reply.code(404).send()
    return await reply.type('text/javascript').send(readFileSync(path))
  })
}
