/**
 * Binary link frames (PROTOCOL.md §2a), for links whose `hello` says
 * `encoding: "binary"` or `"raw"`: a player's binary frame reaches the backend
 * as raw bytes, and a backend's binary `send` reaches the player the same
 * way, with no base64 on the path; with `"raw"` text frames travel the same
 * way, with no JSON on the path. Pure codec: no sockets, no I/O.
 *
 * A binary link frame is a sequence of records, each `type` (u8), `length`
 * (u32 big-endian) and `length` bytes of body. Every length is checked
 * against what is left of the frame before it is used, so a lying or huge
 * length costs nothing: nothing is allocated from a length a peer wrote.
 */
import { isUtf8 } from 'node:buffer'
import { decodeActions, decodeEvents, encodeFrame, type Decoded } from './codec.js'
import type { Action, Event, MessageEvent, Params, SendAction } from './schemas.js'
import { Problems, type Problem } from './problems.js'
import { isParams } from './validation.js'

export const RecordType = {
  /** UTF-8 JSON: one event/action or an array of them, exactly as a text frame holds. */
  JSON: 1,
  /** gateway → backend: a player's binary frame. */
  MESSAGE: 2,
  /** backend → gateway: a binary `send`. */
  SEND: 3,
  /** gateway → backend, `encoding: "raw"` only: a player's text frame, its UTF-8 bytes as sent. Body as MESSAGE. */
  TEXT: 4,
  /** backend → gateway: a text `send`, UTF-8 each player gets as one text frame. Body as SEND. */
  TEXT_SEND: 5
} as const

/** Record header: type (1) + body length (4). */
export const RECORD_HEADER_BYTES = 5
/** MESSAGE body before the user id: seq (6). */
const SEQ_BYTES = 6
/** Largest seq a MESSAGE record carries (u48); far beyond any endpoint's lifetime of events. */
const MAX_SEQ = 2 ** 48 - 1

/** What was wrong with a binary frame, by kind: the `reason` label of the frame-error counters. */
export type BinaryErrorKind =
  /** the frame ends inside a record header (an empty frame included) */
  | 'binary_truncated'
  /** a length that points past the end of its record or frame */
  | 'binary_bad_length'
  /** a record type this side does not take */
  | 'binary_unknown_record'
  /** a well-framed record whose contents are wrong (user id not UTF-8, params not a JSON object of strings, ...) */
  | 'binary_invalid_record'

export type BinaryError = Problem<BinaryErrorKind | 'invalid_json' | 'invalid_message'>

export interface BinaryDecoded<T> {
  items: T[]
  errors: BinaryError[]
}

/** A raw message waiting in the gateway's queue: the record is built when it is written, with the seq it has then. */
export interface RawMessage {
  /** The record's user and params fields, as `messageHead` wrote them for the client. */
  head: Buffer
  data: Buffer
  /** A player's text frame (a TEXT record, `encoding: "raw"`); else a binary one (MESSAGE). */
  text?: true
}

/** What the gateway's link writes: encoded JSON events, and raw messages. */
export interface FrameItem {
  user: string
  text: string
  seq?: number
  raw?: RawMessage
}

/** Longest user id or params text a record's u16 length can name. */
const MAX_FIELD_BYTES = 0xffff

/**
 * Whether a user id and params fit a record's u16 lengths. Only a config
 * with `auth.maxUserIdLength` raised past 65,535 makes one that does not:
 * such a message goes as JSON with base64, which a binary link also takes.
 */
export function fitsRecord (user: string, params = ''): boolean {
  return Buffer.byteLength(user) <= MAX_FIELD_BYTES && Buffer.byteLength(params) <= MAX_FIELD_BYTES
}

/**
 * The user and params fields of a client's MESSAGE and TEXT records (each a
 * u16 length and UTF-8; params as JSON), the same for every message of the
 * client, so written once. Undefined when one does not fit its u16 length
 * (`fitsRecord`): that client's messages go as JSON.
 */
export function messageHead (user: string, params: Params): Buffer | undefined {
  const paramsText = JSON.stringify(params)
  if (!fitsRecord(user, paramsText)) return undefined
  // not from the shared pool: a session keeps its head for its lifetime, which must not pin a pool slab
  const head = Buffer.alloc(4 + Buffer.byteLength(user) + Buffer.byteLength(paramsText))
  writeString16(head, writeString16(head, 0, user), paramsText)
  return head
}

/**
 * `bytes` itself when it is most of the memory it is a view into, else a
 * copy: a payload kept for a while (queued, held) and counted by its own size
 * must not pin the larger frame or socket read it came in.
 */
export function detached (bytes: Buffer): Buffer {
  if (bytes.length * 2 >= bytes.buffer.byteLength) return bytes
  // not from the shared pool either, whose 8 KiB slab one kept byte would pin
  const copy = Buffer.allocUnsafeSlow(bytes.length)
  bytes.copy(copy)
  return copy
}

/** Size of a MESSAGE or TEXT record, header included: what the queue counts for it. */
export function messageRecordBytes (head: Buffer, dataBytes: number): number {
  return RECORD_HEADER_BYTES + SEQ_BYTES + head.length + dataBytes
}

/**
 * Gateway side: one binary frame from a batch. Runs of JSON events become one
 * JSON record (an array when several), raw messages MESSAGE or TEXT records, in order.
 * Sized first, then written into one buffer: each payload is copied once.
 */
export function encodeBinaryFrame (items: readonly FrameItem[]): Buffer {
  const parts: Array<string | FrameItem> = []
  let size = 0
  let run: string[] = []
  const endRun = (): void => {
    if (run.length === 0) return
    const text = encodeFrame(run)
    parts.push(text)
    size += RECORD_HEADER_BYTES + Buffer.byteLength(text)
    run = []
  }
  for (const item of items) {
    if (item.raw === undefined) {
      run.push(item.text)
      continue
    }
    endRun()
    parts.push(item)
    size += messageRecordBytes(item.raw.head, item.raw.data.length)
  }
  endRun()
  const frame = Buffer.allocUnsafe(size)
  let at = 0
  for (const part of parts) at = typeof part === 'string' ? writeJsonRecord(frame, at, part) : writeMessageRecord(frame, at, part)
  return frame
}

/** A MESSAGE or TEXT record: the two share one body layout. */
function writeMessageRecord (frame: Buffer, start: number, item: FrameItem): number {
  const { seq = 0 } = item
  const { head, data, text } = item.raw as RawMessage
  frame[start] = text === true ? RecordType.TEXT : RecordType.MESSAGE
  frame.writeUIntBE(Math.min(seq, MAX_SEQ), start + RECORD_HEADER_BYTES, SEQ_BYTES)
  let at = start + RECORD_HEADER_BYTES + SEQ_BYTES
  at += head.copy(frame, at)
  at += data.copy(frame, at)
  frame.writeUInt32BE(at - start - RECORD_HEADER_BYTES, start + 1)
  return at
}

function writeJsonRecord (frame: Buffer, at: number, text: string): number {
  const bytes = frame.write(text, at + RECORD_HEADER_BYTES)
  frame[at] = RecordType.JSON
  frame.writeUInt32BE(bytes, at + 1)
  return at + RECORD_HEADER_BYTES + bytes
}

function writeString16 (buffer: Buffer, at: number, text: string): number {
  const bytes = buffer.write(text, at + 2)
  buffer.writeUInt16BE(bytes, at)
  return at + 2 + bytes
}

/** Target of a SEND record: every client of the endpoint, or a list of users. */
export type SendRecordTarget = { all: true } | { users: readonly string[] }

/**
 * Backend side: a SEND record, or with `text` a TEXT_SEND record (`data` is
 * then UTF-8). Target byte 0 is `all`; 1 is a list: a u32 count, then each
 * user id as u16 length + UTF-8. The data is the rest of the body.
 */
export function encodeSendRecord (target: SendRecordTarget, data: Uint8Array, text = false): Buffer {
  const users = 'all' in target ? [] : target.users.map((u) => Buffer.from(u))
  const head = 1 + ('all' in target ? 0 : 4 + users.reduce((n, u) => n + 2 + u.length, 0))
  const record = Buffer.allocUnsafe(RECORD_HEADER_BYTES + head + data.byteLength)
  record[0] = text ? RecordType.TEXT_SEND : RecordType.SEND
  record.writeUInt32BE(head + data.byteLength, 1)
  let at = RECORD_HEADER_BYTES
  record[at++] = 'all' in target ? 0 : 1
  if (!('all' in target)) {
    record.writeUInt32BE(users.length, at)
    at += 4
    for (const user of users) {
      record.writeUInt16BE(user.length, at)
      at += 2 + user.copy(record, at + 2)
    }
  }
  record.set(data, at)
  return record
}

/** Backend side: one binary frame from encoded JSON actions and SEND/TEXT_SEND records, in order. */
export function encodeBinaryActions (items: ReadonlyArray<string | Buffer>): Buffer {
  const parts: Buffer[] = []
  let run: string[] = []
  const endRun = (): void => {
    if (run.length === 0) return
    const text = Buffer.from(encodeFrame(run))
    const header = Buffer.allocUnsafe(RECORD_HEADER_BYTES)
    header[0] = RecordType.JSON
    header.writeUInt32BE(text.length, 1)
    parts.push(header, text)
    run = []
  }
  for (const item of items) {
    if (typeof item === 'string') {
      run.push(item)
    } else {
      endRun()
      parts.push(item)
    }
  }
  endRun()
  return parts.length === 1 ? parts[0] : Buffer.concat(parts)
}

/** Reads a record body's fields in order; throws RecordError for a length past the end or bad contents. */
class BodyReader {
  at = 0
  constructor (private readonly body: Buffer) {}

  need (bytes: number, what: string): void {
    if (this.body.length - this.at < bytes) throw new RecordError('binary_bad_length', `${what} needs ${bytes} bytes, ${this.body.length - this.at} are left in the record`)
  }

  u8 (what: string): number {
    this.need(1, what)
    return this.body[this.at++]
  }

  u32 (what: string): number {
    this.need(4, what)
    const value = this.body.readUInt32BE(this.at)
    this.at += 4
    return value
  }

  uint (bytes: number, what: string): number {
    this.need(bytes, what)
    const value = this.body.readUIntBE(this.at, bytes)
    this.at += bytes
    return value
  }

  string16 (what: string): string {
    this.need(2, `${what} length`)
    const length = this.body.readUInt16BE(this.at)
    this.need(2 + length, what)
    const start = this.at + 2
    this.at = start + length
    // user ids and params are short and mostly ASCII: checked here, without a view for isUtf8 (one per record adds up)
    if (isAscii(this.body, start, this.at)) return this.body.toString('latin1', start, this.at)
    if (!isUtf8(this.body.subarray(start, this.at))) throw new RecordError('binary_invalid_record', `${what} is not UTF-8`)
    return this.body.toString('utf8', start, this.at)
  }

  /**
   * The rest of the body, as the payload of a send or message; with `text`,
   * it must be UTF-8 (a player's browser fails a socket on a text frame that
   * is not). A view into the frame when it is most of it; else a copy, so a
   * small payload kept for a player (counted by its own size) does not pin a
   * large frame, nor the read buffer the frame itself is a view into.
   */
  rest (text: boolean): Buffer {
    const rest = this.body.subarray(this.at)
    if (text && !isUtf8(rest)) throw new RecordError('binary_invalid_record', 'text is not UTF-8')
    return detached(rest)
  }
}

/** Whether bytes `start` to `end` are all ASCII (and so UTF-8, and the same string read as Latin-1). */
function isAscii (bytes: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (bytes[i] > 0x7f) return false
  return true
}

class RecordError extends Error {
  constructor (readonly kind: BinaryErrorKind, message: string) {
    super(message)
  }
}

/** A record's name in a problem: built only for one, as the walk runs for every message. */
function recordName (index: number): string {
  return `record[${index}]`
}

/** The record types one side takes besides JSON, each with its body's reader. */
type RecordReaders<T> = ReadonlyMap<number, (reader: BodyReader) => T>

/**
 * Walks the records of a frame in order. A record header cut short or a
 * length past the end stops the walk (what follows cannot be framed); an
 * unknown type is skipped by its length.
 */
function decodeBinary<T> (
  frame: Buffer,
  own: RecordReaders<T>,
  json: (text: string) => Decoded<T>
): BinaryDecoded<T> {
  const items: T[] = []
  const errors = new Problems<BinaryError['kind']>()
  if (frame.length === 0) errors.add('binary_truncated', 'empty binary frame: a frame holds at least one record')
  let at = 0
  for (let index = 0; at < frame.length; index++) {
    if (frame.length - at < RECORD_HEADER_BYTES) {
      errors.add('binary_truncated', `frame ends inside a record header at byte ${at} (${frame.length - at} of ${RECORD_HEADER_BYTES} bytes)`)
      break
    }
    const type = frame[at]
    const length = frame.readUInt32BE(at + 1)
    const left = frame.length - at - RECORD_HEADER_BYTES
    if (length > left) {
      errors.add('binary_bad_length', `record at byte ${at} says ${length} bytes, ${left} are left in the frame`)
      break
    }
    const body = frame.subarray(at + RECORD_HEADER_BYTES, at + RECORD_HEADER_BYTES + length)
    at += RECORD_HEADER_BYTES + length
    if (type === RecordType.JSON) {
      if (!isUtf8(body)) {
        errors.add('binary_invalid_record', `${recordName(index)}: JSON record is not UTF-8`)
        continue
      }
      const decoded = json(body.toString())
      for (const item of decoded.items) items.push(item)
      for (const error of decoded.errors) errors.add(error.kind, `${recordName(index)}: ${error.message}`, error.count)
      continue
    }
    const read = own.get(type)
    if (read === undefined) {
      errors.add('binary_unknown_record', `${recordName(index)}: record type ${type} is not one this side takes (${[RecordType.JSON, ...own.keys()].join(', ')})`)
      continue
    }
    try {
      items.push(read(new BodyReader(body)))
    } catch (err) {
      if (!(err instanceof RecordError)) throw err
      errors.add(err.kind, `${recordName(index)}: ${err.message}`)
    }
  }
  return { items, errors: errors.done() }
}

// TEXT_SEND is taken on `binary` links too: harmless, as a backend that does not know it never sends it
const ACTION_READERS: RecordReaders<Action> = new Map([
  [RecordType.SEND, (reader) => readSend(reader, false)],
  [RecordType.TEXT_SEND, (reader) => readSend(reader, true)]
])
const MESSAGE_READER = (reader: BodyReader): Event => readMessage(reader, false)
const EVENT_READERS: RecordReaders<Event> = new Map([
  [RecordType.MESSAGE, MESSAGE_READER],
  [RecordType.TEXT, (reader) => readMessage(reader, true)]
])
/** `encoding: "binary"`: TEXT records are the raw encoding's only (PROTOCOL.md §2a). */
const BINARY_EVENT_READERS: RecordReaders<Event> = new Map([[RecordType.MESSAGE, MESSAGE_READER]])

/** Gateway side: a backend's binary frame → its valid actions, plus what was wrong, by kind. */
export function decodeBinaryActions (frame: Buffer): BinaryDecoded<Action> {
  return decodeBinary<Action>(frame, ACTION_READERS, decodeActions)
}

/** Backend side: a gateway's binary frame → its valid events, plus what was wrong, by kind; `text`: the link's hello said `"raw"`, so TEXT records are taken. */
export function decodeBinaryEvents (frame: Buffer, text: boolean): BinaryDecoded<Event> {
  return decodeBinary<Event>(frame, text ? EVENT_READERS : BINARY_EVENT_READERS, decodeEvents)
}

/**
 * A SEND or TEXT_SEND body. A text send's `data` is a Buffer of UTF-8 with
 * no `binary`: the player gets those bytes as a text frame, never decoded
 * to a string on the way.
 */
function readSend (reader: BodyReader, text: boolean): SendAction {
  // each shape written out, no spread of a `binary` part: this runs per record (bench/perf-round2.md, round 4)
  const target = reader.u8('target')
  if (target === 0) return text ? { action: 'send', all: true, data: reader.rest(true) } : { action: 'send', all: true, data: reader.rest(false), binary: true }
  if (target !== 1) throw new RecordError('binary_invalid_record', `target must be 0 (all) or 1 (users), not ${target}`)
  const count = reader.u32('user count')
  if (count === 0) throw new RecordError('binary_invalid_record', 'user count must be at least 1')
  // each user takes at least 2 bytes: a count that cannot fit is refused before any list is built
  reader.need(count * 2, `${count} users`)
  const users: string[] = []
  for (let i = 0; i < count; i++) {
    const user = reader.string16(`user[${i}]`)
    if (user === '') throw new RecordError('binary_invalid_record', `user[${i}] is empty`)
    users.push(user)
  }
  const data = reader.rest(text)
  if (users.length > 1) return text ? { action: 'send', users, data } : { action: 'send', users, data, binary: true }
  return text ? { action: 'send', user: users[0], data } : { action: 'send', user: users[0], data, binary: true }
}

/**
 * A MESSAGE or TEXT body. A TEXT record becomes the event a JSON link would
 * have carried (PROTOCOL.md §2): `data` the frame's JSON value when it parses,
 * else the text itself.
 */
function readMessage (reader: BodyReader, text: boolean): MessageEvent {
  const seq = reader.uint(SEQ_BYTES, 'seq')
  const user = reader.string16('user')
  if (user === '') throw new RecordError('binary_invalid_record', 'user is empty')
  const paramsText = reader.string16('params')
  let params: unknown
  try {
    params = JSON.parse(paramsText)
  } catch {
    throw new RecordError('binary_invalid_record', 'params is not JSON')
  }
  if (!isParams(params)) throw new RecordError('binary_invalid_record', 'params must be a JSON object of strings')
  const data = reader.rest(text)
  const message: MessageEvent = text ? { event: 'message', user, params, data: textValue(data.toString()) } : { event: 'message', user, params, data, binary: true }
  if (seq !== 0) message.seq = seq
  return message
}

function textValue (text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}
