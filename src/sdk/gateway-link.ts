/**
 * One gateway's link into this backend: a `ws` socket that carries events in
 * and actions out. It decodes frames (single or batch) with the protocol
 * codec, reports bad ones without closing, batches the actions written in one
 * tick into as few frames as fit under MAX_BATCH_CHARS, and pings the gateway
 * so a dead one is noticed.
 */
import { WebSocket } from 'ws'
import { decodeBinaryEvents, decodeEvents, encodeBinaryActions, encodeFrame, truncateReason, type Event } from '../../protocol/index.js'

/**
 * Batches are cut at this many characters (at most 3 MiB of UTF-8), far
 * below the gateway's `backend.maxFrameBytes` (16 MiB by default).
 */
const MAX_BATCH_CHARS = 1 << 20

export interface LinkListener {
  /** Valid events of one frame, in order. */
  events (link: GatewayLink, events: Event[]): void
  /** A problem with a frame: not JSON, binary, or a message that fails the schema; `kind` as in PROTOCOL.md §2a/§4 when known; `count` problems of that kind (a summary past the first hundred of a frame). */
  badFrame (link: GatewayLink, problem: string, kind?: string, count?: number): void
  closed (link: GatewayLink, code: number): void
}

let nextLinkId = 1

export class GatewayLink {
  /** For logs, until `hello` names the gateway. */
  readonly id = nextLinkId++
  /** The gateway's node id, endpoint and cluster, from its `hello`. */
  gateway?: string
  endpoint?: string
  cluster?: string
  /** The pool member this link is for, from `hello.member` (PROTOCOL.md §10). */
  member?: string
  /**
   * The gateway's `hello` said `encoding: "binary"` or `"raw"` (PROTOCOL.md
   * §2a): it sends binary link frames, and takes SEND records. Set as the
   * hello is read, before any later frame of the link.
   */
  binary = false
  /** The `hello` said `encoding: "raw"`: text comes in TEXT records, and text sends go as TEXT_SEND records. */
  rawText = false
  /** Encoded JSON actions, and SEND/TEXT_SEND records on a binary link. */
  private outbox: Array<string | Buffer> = []
  private alive = true
  private readonly heartbeat?: NodeJS.Timeout

  constructor (private readonly socket: WebSocket, pingIntervalMs: number, private readonly listener: LinkListener) {
    socket.on('message', (data: Buffer, isBinary: boolean) => this.onFrame(data, isBinary))
    socket.on('pong', () => { this.alive = true })
    // an error is always followed by `close`, which does the cleanup
    socket.on('error', () => {})
    socket.on('close', (code: number) => {
      clearInterval(this.heartbeat)
      this.listener.closed(this, code)
    })
    if (pingIntervalMs > 0) {
      this.heartbeat = setInterval(() => this.checkAlive(), pingIntervalMs)
      this.heartbeat.unref()
    }
  }

  get isOpen (): boolean {
    return this.socket.readyState === WebSocket.OPEN
  }

  /** `gateway-node/endpoint`, or `link#3` before hello. */
  get label (): string {
    return this.gateway === undefined ? `link#${this.id}` : `${this.gateway}/${this.endpoint ?? '?'}`
  }

  /** Queues one encoded action (or SEND record); everything queued in the same tick leaves as one frame. */
  write (encoded: string | Buffer): void {
    if (!this.isOpen) return
    this.outbox.push(encoded)
    if (this.outbox.length === 1) queueMicrotask(this.flush)
  }

  close (code: number, reason: string): void {
    this.flush()
    this.socket.close(code, truncateReason(reason))
  }

  terminate (): void {
    this.socket.terminate()
  }

  /** Writes what is queued, cut into frames of at most MAX_BATCH_CHARS (characters, or bytes of a record; one larger action goes alone). */
  private readonly flush = (): void => {
    const outbox = this.outbox
    this.outbox = []
    if (outbox.length === 0 || !this.isOpen) return
    let start = 0
    let size = 0
    for (let i = 0; i < outbox.length; i++) {
      if (i > start && size + outbox[i].length > MAX_BATCH_CHARS) {
        this.socket.send(frameOf(outbox.slice(start, i)))
        start = i
        size = 0
      }
      size += outbox[i].length
    }
    this.socket.send(frameOf(outbox.slice(start)))
  }

  private onFrame (data: Buffer, isBinary: boolean): void {
    this.alive = true
    if (isBinary && !this.binary) {
      this.listener.badFrame(this, 'binary frame: the protocol is JSON text frames unless hello says encoding "binary" or "raw"', 'binary_frame')
      return
    }
    const { items, errors } = isBinary ? decodeBinaryEvents(data, this.rawText) : decodeEvents(data.toString())
    for (const error of errors) this.listener.badFrame(this, error.message, error.kind, 'count' in error ? error.count : undefined)
    for (const event of items) {
      if (event.event !== 'hello') continue
      this.binary = event.encoding !== undefined
      this.rawText = event.encoding === 'raw'
    }
    if (items.length > 0) this.listener.events(this, items)
  }

  /** A gateway that answered neither the last ping nor with any frame since is gone. */
  private checkAlive (): void {
    if (!this.alive) {
      this.socket.terminate()
      return
    }
    this.alive = false
    this.socket.ping()
  }
}

/** A text frame of JSON actions, or a binary frame when a SEND or TEXT_SEND record is among them (PROTOCOL.md §2a). */
function frameOf (items: Array<string | Buffer>): string | Buffer {
  return items.every((item) => typeof item === 'string') ? encodeFrame(items as string[]) : encodeBinaryActions(items)
}
