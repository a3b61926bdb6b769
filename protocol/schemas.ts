/**
 * The wire protocol's one source of truth (PROTOCOL.md): every event and
 * action is a TypeBox schema, which yields both the runtime validator (ajv,
 * in codec.ts) and the TypeScript type (`Static`).
 */
import { Type, type ObjectOptions, type Static, type TObject, type TProperties, type TSchema, type TUnion, type TUnsafe } from '@sinclair/typebox'
import { MAX_REASON_BYTES } from './close-codes.js'

const User = Type.String({ minLength: 1, description: 'user id, from the configured JWT claim' })
const Claims = Type.Record(Type.String(), Type.Unknown(), { description: 'verified JWT payload' })
const Params = Type.Record(Type.String(), Type.String(), { description: 'values of the endpoint path parameters' })
const CloseCodeNumber = Type.Integer({ minimum: 1000, maximum: 4999 })
/** RFC 6455 counts a close reason in UTF-8 bytes; `maxUtf8Bytes` is the codec's own keyword for that. */
const Reason = Type.String({ maxUtf8Bytes: MAX_REASON_BYTES })
/** An empty list names nobody: refused like any other action that would do nothing, so the mistake is seen. */
const Users = Type.Array(User, { minItems: 1 })
/** One connection of a user, on endpoints with `duplicate: "allow"` only (PROTOCOL.md §6a): opaque, unique across the cluster and time. */
const Conn = Type.String({ minLength: 1, maxLength: 256, description: 'connection id, with duplicate: "allow" only' })

/** Actions are strict so a backend's typo is caught; events are open, so a backend ignores fields added later (PROTOCOL.md §9). */
const strict = { additionalProperties: false }
const open = {}
/** Present on `open`/`message`/`close` when the endpoint has `backend.acks` (PROTOCOL.md §5a). */
const Seq = Type.Optional(Type.Integer({ minimum: 1, description: 'grows by one per event on the endpoint, across reconnects' }))

// ---- events: gateway → backend ----

export const HelloEvent = Type.Object({
  event: Type.Literal('hello'),
  gateway: Type.String({ description: 'node id of the gateway process' }),
  endpoint: Type.String(),
  session: Type.String({ minLength: 1, description: 'random per gateway process: `seq` starts at 1 again only with a new session' }),
  protocol: Type.Integer(),
  acks: Type.Optional(Type.Literal(true, { description: 'events carry seq; answer with ack actions' })),
  cluster: Type.Optional(Type.String({ minLength: 1, description: 'gateways naming the same cluster are one gateway: any of their links reaches every user, and `all` reaches the whole cluster' })),
  member: Type.Optional(Type.String({ minLength: 1, description: 'with `backend.urls`: the id the gateway gives this backend in its pool' })),
  encoding: Type.Optional(Type.Union([Type.Literal('binary'), Type.Literal('raw')], { description: 'binary messages (and with `raw` text messages) travel raw in binary link frames (PROTOCOL.md §2a), both ways' })),
  refresh: Type.Optional(Type.Literal(true, { description: 'with `backend.refresh`: a player\'s new token on a live session comes as a `refresh` event (PROTOCOL.md §5d)' }))
}, open)

export const SyncUser = Type.Object({ user: User, conn: Type.Optional(Conn), claims: Claims, params: Params }, open)

export const SyncEvent = Type.Object({
  event: Type.Literal('sync'),
  users: Type.Array(SyncUser),
  seq: Type.Optional(Type.Integer({ minimum: 0, description: 'with acks: the roster is as of this event; replayed events follow' }))
}, open)

export const OpenEvent = Type.Object({
  event: Type.Literal('open'),
  user: User,
  conn: Type.Optional(Conn),
  claims: Claims,
  params: Params,
  refresh: Type.Optional(Type.Literal(true, { description: 'in a cluster: this open continues a session that another node closed with 4410 (PROTOCOL.md §5d)' })),
  seq: Seq
}, open)

/** A live session's player presented a new token (PROTOCOL.md §5d); only with `backend.refresh`. */
export const RefreshEvent = Type.Object({
  event: Type.Literal('refresh'),
  user: User,
  conn: Type.Optional(Conn),
  claims: Claims,
  params: Params,
  seq: Seq
}, open)

export const MessageEvent = Type.Object({
  event: Type.Literal('message'),
  user: User,
  conn: Type.Optional(Conn),
  params: Params,
  data: Type.Unknown(),
  binary: Type.Optional(Type.Literal(true)),
  seq: Seq
}, open)

export const CloseEvent = Type.Object({
  event: Type.Literal('close'),
  user: User,
  conn: Type.Optional(Conn),
  params: Params,
  code: CloseCodeNumber,
  reason: Type.String(),
  seq: Seq
}, open)

/** A draining pool member holds no key any more: it may exit (PROTOCOL.md §10). */
export const DrainedEvent = Type.Object({
  event: Type.Literal('drained')
}, open)

export const Event = Type.Union([HelloEvent, SyncEvent, OpenEvent, RefreshEvent, MessageEvent, CloseEvent, DrainedEvent])

// ---- actions: backend → gateway ----

/** Who an action is for: one user (all their connections), a list of them, one connection, or (`send` only) every client of the endpoint. */
const ToUser = Type.Object({ user: User })
const ToUsers = Type.Object({ users: Users })
const ToAll = Type.Object({ all: Type.Literal(true) })
/** One connection of a user, by the `conn` its events carry (`duplicate: "allow"` endpoints). */
const ToConn = Type.Object({ conn: Conn })
export const SendTarget = Type.Union([ToUser, ToUsers, ToAll, ToConn])
export const CloseTarget = Type.Union([ToUser, ToUsers, ToConn])

/**
 * An action: its kind, exactly one of `targets`, and its other fields. ajv
 * checks the targets flat (each field optional, a `oneOf` requiring exactly
 * one of them), so a frame naming none or two is told which it may name.
 */
function targeted<K extends string, T extends TObject[], F extends TProperties> (
  kind: K, targets: TUnion<T>, fields: F, options: ObjectOptions = {}
): TUnsafe<{ action: K } & Static<TUnion<T>> & Static<TObject<F>>> {
  const targetFields: TProperties = {}
  for (const target of targets.anyOf) {
    for (const [name, schema] of Object.entries(target.properties)) targetFields[name] = Type.Optional(schema)
  }
  return Type.Unsafe(Type.Object({ action: Type.Literal(kind), ...targetFields, ...fields }, {
    ...strict,
    oneOf: targets.anyOf.map((target) => ({ required: Object.keys(target.properties) })),
    ...options
  }))
}

export const SendAction = targeted('send', SendTarget, {
  data: Type.Unknown(),
  binary: Type.Optional(Type.Boolean())
}, {
  // binary data travels as base64 text
  if: { required: ['binary'], properties: { binary: { const: true } } },
  then: { properties: { data: { type: 'string', pattern: '^[A-Za-z0-9+/]*={0,2}$' } } }
})

export const CloseAction = targeted('close', CloseTarget, {
  code: Type.Optional(Type.Union([Type.Literal(1000), Type.Integer({ minimum: 4000, maximum: 4999 })])),
  reason: Type.Optional(Reason)
})

/** Everything up to and including `seq` is processed (cumulative). */
export const AckAction = Type.Object({
  action: Type.Literal('ack'),
  seq: Type.Integer({ minimum: 0 })
}, strict)

/** A pool member asks for no new keys (PROTOCOL.md §10). */
export const DrainAction = Type.Object({ action: Type.Literal('drain') }, strict)
/** A draining pool member takes new keys again. */
export const UndrainAction = Type.Object({ action: Type.Literal('undrain') }, strict)

export const Action = Type.Union([SendAction, CloseAction, AckAction, DrainAction, UndrainAction])

export type HelloEvent = Static<typeof HelloEvent>
export type SyncUser = Static<typeof SyncUser>
export type SyncEvent = Static<typeof SyncEvent>
export type OpenEvent = Static<typeof OpenEvent>
export type RefreshEvent = Static<typeof RefreshEvent>
export type MessageEvent = Static<typeof MessageEvent>
export type CloseEvent = Static<typeof CloseEvent>
export type DrainedEvent = Static<typeof DrainedEvent>
export type Event = Static<typeof Event>
export type SendAction = Static<typeof SendAction>
export type CloseAction = Static<typeof CloseAction>
export type AckAction = Static<typeof AckAction>
export type DrainAction = Static<typeof DrainAction>
export type UndrainAction = Static<typeof UndrainAction>
/** The actions a backend pool handles itself: they never reach the relay. */
export type PoolAction = DrainAction | UndrainAction
export type SendTarget = Static<typeof SendTarget>
export type CloseTarget = Static<typeof CloseTarget>
/** The actions the gateway carries out on clients; `ack` stays with the link. */
export type ClientAction = SendAction | CloseAction
export type Action = Static<typeof Action>
export type Claims = Static<typeof Claims>
export type Params = Static<typeof Params>

/** Schemas by discriminator value, so a bad frame's error names the right fields. */
export const EventSchemas: Record<Event['event'], TSchema> = {
  hello: HelloEvent, sync: SyncEvent, open: OpenEvent, refresh: RefreshEvent, message: MessageEvent, close: CloseEvent, drained: DrainedEvent
}
export const ActionSchemas: Record<Action['action'], TSchema> = {
  send: SendAction, close: CloseAction, ack: AckAction, drain: DrainAction, undrain: UndrainAction
}
