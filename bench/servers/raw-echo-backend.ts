/**
 * The gatehouse-raw contender's backend (`backend.encoding: "raw"`,
 * PROTOCOL.md §2a): answers every TEXT record with a TEXT_SEND record of the
 * same bytes to the same user, built by copying the user id and the payload
 * straight from the record: no JSON and no string decoding on the message
 * path, which is what a raw backend does. The answers to one link frame go
 * out as one binary frame. JSON text frames (hello, sync, open, close) are
 * only counted. `broadcast` sends one TEXT_SEND to all down the link.
 */
import { linkServer, serveLinkBackend } from './link-server.js'

const TEXT = 4
const TEXT_SEND = 5
/** Record header: type (1) + body length (4); a TEXT body starts with seq (6). */
const HEADER = 5
const SEQ = 6

const wss = await linkServer(64 * 1024 * 1024)
const counts = { frames: 0, messages: 0, opens: 0, closes: 0 }

/** Size of the TEXT_SEND answering the TEXT record at `at`, or 0 for any other record. */
function answerSize (frame: Buffer, at: number): number {
  if (frame[at] !== TEXT) return 0
  const body = at + HEADER
  const userLength = frame.readUInt16BE(body + SEQ)
  const paramsAt = body + SEQ + 2 + userLength
  const dataLength = frame.readUInt32BE(at + 1) - (paramsAt + 2 + frame.readUInt16BE(paramsAt) - body)
  // target 1, count 1, the user, the data
  return HEADER + 1 + 4 + 2 + userLength + dataLength
}

function echo (frame: Buffer): Buffer {
  let size = 0
  for (let at = 0; at < frame.length; at += HEADER + frame.readUInt32BE(at + 1)) size += answerSize(frame, at)
  const out = Buffer.allocUnsafe(size)
  let to = 0
  for (let at = 0; at < frame.length; at += HEADER + frame.readUInt32BE(at + 1)) {
    const length = answerSize(frame, at)
    if (length === 0) continue
    counts.messages++
    const body = at + HEADER
    const userLength = frame.readUInt16BE(body + SEQ)
    const paramsAt = body + SEQ + 2 + userLength
    const dataAt = paramsAt + 2 + frame.readUInt16BE(paramsAt)
    out[to] = TEXT_SEND
    out.writeUInt32BE(length - HEADER, to + 1)
    out[to + HEADER] = 1
    out.writeUInt32BE(1, to + HEADER + 1)
    // the user id with its u16 length, as the TEXT record holds it
    frame.copy(out, to + HEADER + 5, body + SEQ, body + SEQ + 2 + userLength)
    frame.copy(out, to + HEADER + 7 + userLength, dataAt, body + frame.readUInt32BE(at + 1))
    to += length
  }
  return out
}

wss.on('connection', (socket) => {
  socket.on('error', () => {})
  socket.on('message', (data: Buffer, isBinary: boolean) => {
    counts.frames++
    if (isBinary) {
      const answer = echo(data)
      if (answer.length > 0) socket.send(answer)
      return
    }
    // control traffic only: a raw link's messages all come as records
    const parsed = JSON.parse(data.toString()) as { event: string } | Array<{ event: string }>
    for (const event of Array.isArray(parsed) ? parsed : [parsed]) {
      if (event.event === 'open') counts.opens++
      else if (event.event === 'close') counts.closes++
    }
  })
})

serveLinkBackend(wss, counts, (id, sentAt) => {
  const text = Buffer.from(JSON.stringify({ b: id, t: sentAt }))
  const record = Buffer.allocUnsafe(HEADER + 1 + text.length)
  record[0] = TEXT_SEND
  record.writeUInt32BE(1 + text.length, 1)
  record[HEADER] = 0
  text.copy(record, HEADER + 1)
  return record
})
