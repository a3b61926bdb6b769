/**
 * The admin routes (docs/pools.md, "Joining at run time"; protocol/PROTOCOL.md
 * §10): pool members register, renew and end a lease, and the pool is listed.
 * Registered only with `admin.token`; every request needs it as a Bearer
 * token, checked before the body is read, in constant time, and never logged
 * (the request serializer, src/logger.ts, logs no header).
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import { Type, type Static } from '@sinclair/typebox'
import { Ajv } from 'ajv'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { formatSchemaErrors } from '../protocol/validation.js'
import type { MemberLeases } from '../src/pool/leases.js'
import { memberUrlProblem } from '../src/config/member-url.js'
import {
  GW_ERR_ADMIN_UNAUTHORIZED, GW_ERR_BAD_REGISTRATION, GW_ERR_MEMBER_CONFLICT, GW_ERR_NO_MEMBER, GW_ERR_NO_POOL, GW_ERR_POOL_FULL
} from '../src/errors.js'

const strict = { additionalProperties: false }

const PoolParams = Type.Object({ endpoint: Type.String({ minLength: 1 }) }, strict)
const MemberParams = Type.Object({ endpoint: Type.String({ minLength: 1 }), id: Type.String({ minLength: 1 }) }, strict)

/** The PUT body: where the gateway dials the member, and its share of new keys. */
export const Registration = Type.Object({
  url: Type.String({ pattern: '^wss?://', description: 'ws:// or wss:// URL the gateway dials' }),
  weight: Type.Number({ exclusiveMinimum: 0, default: 1, description: 'share of new keys relative to the other members' })
}, strict)

/** Registrations are a URL and a number; anything longer is not one. */
const BODY_LIMIT = 4096

/** Fastify's own ajv drops unknown fields and coerces types; a registration is refused for either, by field. */
const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false })

export interface AdminRoutesOptions {
  token: string
  leases: MemberLeases
}

export async function adminRoutes (app: FastifyInstance, { token, leases }: AdminRoutesOptions): Promise<void> {
  const expected = digest(token)
  const authorize = async (request: FastifyRequest): Promise<void> => {
    const presented = /^Bearer +(\S+) *$/i.exec(request.headers.authorization ?? '')?.[1]
    // equal-length digests, so the comparison takes as long whatever the guess
    if (presented === undefined || !timingSafeEqual(digest(presented), expected)) throw new GW_ERR_ADMIN_UNAUTHORIZED()
  }
  const knownPool = async (request: FastifyRequest<{ Params: { endpoint: string } }>): Promise<void> => {
    if (!leases.has(request.params.endpoint)) throw new GW_ERR_NO_POOL(request.params.endpoint)
  }
  const common = {
    onRequest: authorize,
    preValidation: knownPool,
    validatorCompiler: ({ schema }: { schema: object }) => ajv.compile(schema),
    schemaErrorFormatter: (errors: Parameters<typeof formatSchemaErrors>[0], dataVar: string) => new GW_ERR_BAD_REGISTRATION(formatSchemaErrors(errors, dataVar).join('; '))
  }

  app.put<{ Params: Static<typeof MemberParams>, Body: Static<typeof Registration> }>('/_gatehouse/pools/:endpoint/members/:id', {
    ...common,
    bodyLimit: BODY_LIMIT,
    schema: { params: MemberParams, body: Registration }
  }, async (request, reply) => {
    const { endpoint, id } = request.params
    const { url, weight } = request.body
    const problem = memberUrlProblem(url)
    if (problem !== undefined) throw new GW_ERR_BAD_REGISTRATION(`body.url: ${problem}`)
    // JSON.parse reads 1e400 as Infinity, which passes `> 0`: a member that wins every key, and a number Redis cannot store
    if (!Number.isFinite(weight)) throw new GW_ERR_BAD_REGISTRATION('body.weight: must be a finite number')
    const outcome = await leases.register(endpoint, { id, url, weight })
    if (!outcome.ok) throw outcome.why === 'full' ? new GW_ERR_POOL_FULL(outcome.detail) : new GW_ERR_MEMBER_CONFLICT(outcome.detail)
    return await reply.code(outcome.created ? 201 : 200).send({ leaseMs: outcome.leaseMs })
  })

  app.delete<{ Params: Static<typeof MemberParams> }>('/_gatehouse/pools/:endpoint/members/:id', {
    ...common,
    schema: { params: MemberParams }
  }, async (request, reply) => {
    const { endpoint, id } = request.params
    if (leases.configured(endpoint, id)) throw new GW_ERR_MEMBER_CONFLICT(`member "${id}" is in the config: remove it there, or drain it`)
    if (!await leases.deregister(endpoint, id)) throw new GW_ERR_NO_MEMBER(id)
    return await reply.code(204).send()
  })

  app.get<{ Params: Static<typeof PoolParams> }>('/_gatehouse/pools/:endpoint', {
    ...common,
    schema: { params: PoolParams }
  }, async (request) => {
    const { endpoint } = request.params
    return { endpoint, leaseMs: leases.leaseMs, ...await leases.list(endpoint) }
  })
}

function digest (text: string): Buffer {
  return createHash('sha256').update(text).digest()
}

