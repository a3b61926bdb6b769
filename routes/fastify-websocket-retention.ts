/**
 * What @fastify/websocket (11.x) keeps for the life of every upgraded socket,
 * and letting it go: 3 to 5 KiB of RSS per idle client (the idle workload of
 * bench/, README there), guarded by test/upgrade-retention.test.ts.
 *
 * - The stand-in ServerResponse it routes the upgrade with (fastify's
 *   `reply.raw`) stays assigned to the TCP socket, and through it the
 *   IncomingMessage: headers, URL, token. `detachSocket` is Node's
 *   counterpart of the `assignSocket` the plugin calls.
 * - The 'error' listener it puts on every WebSocket closes over the fastify
 *   request and reply, to hand them to its `errorHandler`.
 *
 * The plugin has no option or hook for either: no hook runs after the
 * upgrade, it refuses ws's `noServer`, and it adds the listener just before
 * the route handler runs, so the 'error' listeners on the socket when the
 * handler starts are its own. Owning the 'upgrade' event instead (ws
 * `noServer`, as the SDK's link server does) would take player handshakes
 * out of fastify's hooks, error handler and 404 handling altogether.
 */
import type { ServerResponse } from 'node:http'
import type { WebSocket } from 'ws'

/**
 * Call first in the WebSocket handler, before any listener of yours is on;
 * call the function returned once yours are.
 */
export function pluginRetention (socket: WebSocket, standIn: ServerResponse): () => void {
  const pluginListeners = socket.listeners('error') as Array<(err: Error) => void>
  return () => {
    if (standIn.socket !== null) standIn.detachSocket(standIn.socket)
    for (const listener of pluginListeners) socket.off('error', listener)
  }
}
