/**
 * An upgraded player socket keeps nothing of its HTTP handshake: not the
 * request (headers, URL, token) nor the fastify request and reply that
 * @fastify/websocket holds on to (routes/upgrade-retention.ts). Per client
 * that is ~4 KiB of RSS (bench/results.md); here it is checked exactly: the
 * upgrade's IncomingMessage must be collectable while the socket is open.
 */
import t from 'tap'
import type { IncomingMessage } from 'node:http'
import { setImmediate as turn } from 'node:timers/promises'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { backendFor } from './helpers/backend.js'
import { startGateway, testConfig } from './helpers/gateway.js'
import { connect } from './helpers/client.js'
import { tokenFor } from './helpers/tokens.js'

// what jest's --detectLeaks does: a full GC on demand without starting node with --expose-gc
setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

/** True once `ref`'s object is gone; WeakRefs clear only between turns of the event loop. */
async function collected (ref: WeakRef<object>): Promise<boolean> {
  for (let i = 0; i < 10 && ref.deref() !== undefined; i++) {
    await turn()
    gc()
  }
  return ref.deref() === undefined
}

t.test('the handshake request of an open player socket is collectable', async (t) => {
  const backend = await backendFor(t)
  const gateway = await startGateway(t, testConfig([{ name: 'lobby', path: '/lobby', backend: backend.url }]))
  await backend.next('hello')
  let upgrade: WeakRef<IncomingMessage> | undefined
  gateway.app.server.on('upgrade', (request: IncomingMessage) => { upgrade = new WeakRef(request) })

  const client = await connect(gateway.url('/lobby'), { token: tokenFor('alice') })
  t.teardown(() => client.ws.terminate())
  await backend.next('open', 'alice')
  t.ok(upgrade, 'the upgrade request was seen')
  t.ok(await collected(upgrade as WeakRef<IncomingMessage>), 'nothing holds the upgrade request once the socket is open')

  client.ws.send('still here')
  t.equal((await backend.next('message', 'alice')).data, 'still here', 'and the socket still relays')
})
