/**
 * The backend of bench/binary.ts: answers every binary `message` with a
 * binary `send` of the same bytes to the same user, in whichever encoding
 * the gateway's hello announced (PROTOCOL.md §2a): base64 in JSON (decoded
 * to bytes and encoded again, as a backend that uses the bytes must), or raw
 * MESSAGE records answered with SEND records. It counts what crosses the
 * link each way, WebSocket framing included, for the bytes-per-event figure.
 */
import { decodeBinaryEvents, decodeEvents, encodeBinaryActions, encodeSendRecord, type Event } from '../../protocol/index.js'
import { serveIpc } from '../ipc.js'
import { serverHandlers } from './common.js'
import { linkServer } from './link-server.js'

const wss = await linkServer(64 * 1024 * 1024)

/** RFC 6455 §5.2: 2 bytes, plus 2 or 8 of extended length, plus 4 of mask on frames from the client (the gateway). */
function wsHeader (payload: number, masked: boolean): number {
  return 2 + (payload > 65535 ? 8 : payload > 125 ? 2 : 0) + (masked ? 4 : 0)
}

const counts = { messages: 0, payloadBytes: 0, inFrames: 0, inBytes: 0, outFrames: 0, outBytes: 0 }

wss.on('connection', (socket) => {
  socket.on('error', () => {})
  const send = (frame: string | Buffer): void => {
    const bytes = typeof frame === 'string' ? Buffer.byteLength(frame) : frame.length
    counts.outFrames++
    counts.outBytes += bytes + wsHeader(bytes, false)
    socket.send(frame)
  }
  socket.on('message', (data: Buffer, isBinary: boolean) => {
    counts.inFrames++
    counts.inBytes += data.length + wsHeader(data.length, true)
    const events: Event[] = isBinary ? decodeBinaryEvents(data, false).items : decodeEvents(data.toString()).items
    const json: string[] = []
    const records: Buffer[] = []
    for (const event of events) {
      if (event.event !== 'message' || event.binary !== true) continue
      counts.messages++
      if (isBinary) {
        const bytes = event.data as Buffer
        counts.payloadBytes += bytes.length
        records.push(encodeSendRecord({ users: [event.user] }, bytes))
      } else {
        const bytes = Buffer.from(event.data as string, 'base64')
        counts.payloadBytes += bytes.length
        json.push(JSON.stringify({ action: 'send', user: event.user, data: bytes.toString('base64'), binary: true }))
      }
    }
    if (records.length > 0) send(encodeBinaryActions(records))
    if (json.length > 0) send(json.length === 1 ? json[0] : `[${json.join(',')}]`)
  })
})

serveIpc({
  ...serverHandlers(async () => {
    for (const client of wss.clients) client.terminate()
    await new Promise<void>((resolve) => wss.close(() => resolve()))
  }),
  /** The counts since the last call, which resets them. */
  take: () => {
    const taken = { ...counts }
    for (const key of Object.keys(counts) as Array<keyof typeof counts>) counts[key] = 0
    return taken
  }
}, { port: (wss.address() as { port: number }).port })
