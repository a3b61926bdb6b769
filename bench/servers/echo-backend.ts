/**
 * The gatehouse contender's backend: accepts the gateway's link and answers
 * every `message` event with a `send` of the same data to the same user
 * (protocol/PROTOCOL.md). The answers to one incoming frame go out as one
 * frame, a batch when there are several. `broadcast` sends ONE
 * `{"action":"send","all":true}` down the link.
 */
import { linkServer, serveLinkBackend } from './link-server.js'

interface Event { event: string, user?: string, data?: unknown }

const wss = await linkServer(64 * 1024 * 1024)
const counts = { frames: 0, messages: 0, opens: 0, closes: 0 }

wss.on('connection', (socket) => {
  socket.on('error', () => {})
  socket.on('message', (data: Buffer) => {
    counts.frames++
    const parsed = JSON.parse(data.toString()) as Event | Event[]
    const events = Array.isArray(parsed) ? parsed : [parsed]
    const actions: string[] = []
    for (const event of events) {
      if (event.event === 'message') {
        counts.messages++
        actions.push(JSON.stringify({ action: 'send', user: event.user, data: event.data }))
      } else if (event.event === 'open') {
        counts.opens++
      } else if (event.event === 'close') {
        counts.closes++
      }
    }
    if (actions.length === 1) socket.send(actions[0])
    else if (actions.length > 1) socket.send(`[${actions.join(',')}]`)
  })
})

serveLinkBackend(wss, counts, (id, sentAt) => JSON.stringify({ action: 'send', all: true, data: { b: id, t: sentAt } }))
