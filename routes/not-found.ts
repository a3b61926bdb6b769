/**
 * Unknown paths. Fastify's own 404 logs and echoes the raw URL, which may
 * carry `?access_token=`; this one logs it redacted and echoes only the path.
 */
import type { FastifyInstance } from 'fastify'
import { redactUrl } from '../src/logger.js'
import { GW_ERR_NOT_FOUND } from '../src/errors.js'

export function handleNotFound (app: FastifyInstance): void {
  app.setNotFoundHandler((request, reply) => {
    request.log.info({ url: redactUrl(request.url) }, 'no route for this path')
    const { statusCode, code, message } = new GW_ERR_NOT_FOUND(request.url.split('?')[0])
    return reply.code(404).send({ statusCode, code, message })
  })
}
