/**
 * Pure frame codec for both ends of a backend link: no sockets, no I/O.
 * A frame is UTF-8 JSON holding one message object or an array of them.
 */
import { _, Ajv, str, type KeywordCxt, type ValidateFunction } from 'ajv'
import {
  ActionSchemas, EventSchemas,
  type Action, type Claims, type ClientAction, type Event, type HelloEvent, type Params, type SyncUser
} from './schemas.js'
import { formatSchemaErrors } from './validation.js'
import { Problems, type Problem } from './problems.js'
import { PROTOCOL_VERSION } from './version.js'

/** `message`: `action[1].code: must be ...`, naming the message and field that failed. */
export type FrameError = Problem<'invalid_json' | 'invalid_message'>

export interface Decoded<T> {
  items: T[]
  errors: FrameError[]
}

// the first problem of each message is enough to name it, and stopping there keeps a hostile frame (200,000 bad `users`) cheap
const ajv = new Ajv({ verbose: true, allErrors: false, strict: false })
// `maxLength` counts characters, but a close reason's limit is in bytes (schemas.ts)
ajv.addKeyword({
  keyword: 'maxUtf8Bytes',
  type: 'string',
  schemaType: 'number',
  code (cxt: KeywordCxt) {
    cxt.fail(_`Buffer.byteLength(${cxt.data}, "utf8") > ${cxt.schema}`)
  },
  error: { message: ({ schemaCode }) => str`must be at most ${schemaCode} bytes of UTF-8` }
})

function compileAll<K extends string> (schemas: Record<K, object>): Record<K, ValidateFunction> {
  const out = {} as Record<K, ValidateFunction>
  for (const key of Object.keys(schemas) as K[]) out[key] = ajv.compile(schemas[key])
  return out
}

const actionValidators = compileAll(ActionSchemas)
const eventValidators = compileAll(EventSchemas)

function decode<T> (
  frame: string,
  discriminator: 'action' | 'event',
  validators: Record<string, ValidateFunction>
): Decoded<T> {
  let parsed: unknown
  try {
    parsed = JSON.parse(frame)
  } catch (err) {
    return { items: [], errors: [{ kind: 'invalid_json', message: `frame is not valid JSON: ${(err as Error).message}` }] }
  }
  const batch = Array.isArray(parsed)
  const list: unknown[] = Array.isArray(parsed) ? parsed : [parsed]
  const items: T[] = []
  const errors = new Problems<FrameError['kind']>()
  // a plain loop, and the item's name built only for an error: this runs for every action a backend sends
  for (let index = 0; index < list.length; index++) {
    const item = list[index]
    const kind = typeof item === 'object' && item !== null ? (item as Record<string, unknown>)[discriminator] : undefined
    const validate = typeof kind === 'string' && Object.hasOwn(validators, kind) ? validators[kind] : undefined
    if (validate?.(item) === true) {
      items.push(item as T)
      continue
    }
    const where = batch ? `${discriminator}[${index}]` : discriminator
    errors.add('invalid_message', () => validate === undefined
      ? `${where}.${discriminator}: must be one of ${Object.keys(validators).join(', ')}`
      : formatSchemaErrors(validate.errors, where).join('; '))
  }
  return { items, errors: errors.done() }
}

/** Gateway side: a backend's frame → the valid actions in it, plus what was wrong with the rest. */
export function decodeActions (frame: string): Decoded<Action> {
  return decode<Action>(frame, 'action', actionValidators)
}

/** Backend side: a gateway's frame → the valid events in it, plus what was wrong with the rest. */
export function decodeEvents (frame: string): Decoded<Event> {
  return decode<Event>(frame, 'event', eventValidators)
}

/** One frame from already-encoded messages: a lone object, or an array (a batch). */
export function encodeFrame (encoded: readonly string[]): string {
  return encoded.length === 1 ? encoded[0] : `[${encoded.join(',')}]`
}

/** What a link announces beyond who it is: the optional fields of `hello`, as the wire has them. */
export type HelloOptions = Partial<Pick<HelloEvent, 'acks' | 'cluster' | 'member' | 'encoding' | 'refresh'>>

/** `session` names the link's sequence of `seq`s (PROTOCOL.md §5a): one per gateway process and endpoint. */
export function encodeHello (gateway: string, endpoint: string, session: string, options: HelloOptions = {}): string {
  const hello: HelloEvent = { event: 'hello', gateway, endpoint, session, protocol: PROTOCOL_VERSION, ...options }
  // JSON leaves out a field whose value is undefined: an option not given is not on the wire
  return JSON.stringify(hello)
}

/** With acks, `seq` says which event the roster is as of. */
export function encodeSync (users: readonly SyncUser[], seq?: number): string {
  return JSON.stringify(seq === undefined ? { event: 'sync', users } : { event: 'sync', users, seq })
}

/** Stamps an encoded open/message/close event with its sequence number. */
export function withSeq (encodedEvent: string, seq: number): string {
  return `${encodedEvent.slice(0, -1)},"seq":${seq}}`
}

/** The event as it was before `withSeq(encodedEvent, seq)`. */
export function withoutSeq (stampedEvent: string, seq: number): string {
  const suffix = `,"seq":${seq}}`
  return stampedEvent.endsWith(suffix) ? `${stampedEvent.slice(0, -suffix.length)}}` : stampedEvent
}

/** Sent to a draining pool member once it holds no key. */
export const DRAINED_EVENT = JSON.stringify({ event: 'drained' })

/**
 * `conn` only on `duplicate: "allow"` endpoints, `refresh` only on the open of a session another node of the
 * cluster closed with 4410 (PROTOCOL.md §5d): without them the event is byte for byte what it always was.
 */
export function encodeOpen (user: string, claims: Claims, params: Params, conn?: string, refresh = false): string {
  return JSON.stringify({ event: 'open', user, conn, claims, params, refresh: refresh ? true : undefined })
}

export function encodeRefresh (user: string, claims: Claims, params: Params, conn?: string): string {
  return JSON.stringify({ event: 'refresh', user, conn, claims, params })
}

export function encodeClose (user: string, params: Params, code: number, reason: string, conn?: string): string {
  return JSON.stringify({ event: 'close', user, conn, params, code, reason })
}

/**
 * The fixed head of every `message` event of one client, built once per
 * connection. Only the gateway writes it, so nothing a client sends can
 * change `user` or `params`.
 */
export function messagePrefix (user: string, params: Params, conn?: string): string {
  const id = conn === undefined ? '' : `"conn":${JSON.stringify(conn)},`
  return `{"event":"message","user":${JSON.stringify(user)},${id}"params":${JSON.stringify(params)},"data":`
}

/**
 * A text frame becomes `data`: its JSON value when the whole frame parses as
 * JSON, else the frame as a JSON string. A frame that parses is a complete
 * JSON value, so splicing its text in place cannot close the envelope early
 * (`1,"user":"bob"` does not parse and goes in as a string).
 */
export function encodeTextMessage (prefix: string, text: string): string {
  try {
    JSON.parse(text)
  } catch {
    return `${prefix}${JSON.stringify(text)}}`
  }
  return `${prefix}${text}}`
}

export function encodeBinaryMessage (prefix: string, bytes: Buffer): string {
  return `${prefix}"${bytes.toString('base64')}","binary":true}`
}

/** Backend side: actions → one frame. */
export function encodeActions (actions: readonly Action[]): string {
  return encodeFrame(actions.map((a) => JSON.stringify(a)))
}

/**
 * What a `send` action's `data` becomes on the player's socket: a text frame
 * unless `binary`. Raw bytes from a binary link frame (PROTOCOL.md §2a) go
 * out as they came: a SEND record's as a binary frame, a TEXT_SEND record's
 * (UTF-8, no `binary`) as a text frame, never decoded to a string.
 */
export function sendPayload (data: unknown, binary: boolean | undefined): string | Buffer {
  if (binary === true) return Buffer.isBuffer(data) ? data : Buffer.from(data as string, 'base64')
  return typeof data === 'string' || Buffer.isBuffer(data) ? data : JSON.stringify(data)
}

/**
 * An action as JSON can carry it, for a hop that speaks JSON only (the
 * cluster bus): raw bytes from a binary link frame become base64 again, and
 * a TEXT_SEND record's text a string, which a text `send` carries as is.
 */
export function portableAction (action: ClientAction): ClientAction {
  if (action.action !== 'send' || !Buffer.isBuffer(action.data)) return action
  return { ...action, data: action.data.toString(action.binary === true ? 'base64' : 'utf8') }
}
