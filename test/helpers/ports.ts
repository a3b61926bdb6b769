import { once } from 'node:events'
import { createServer } from 'node:net'

/** A port that was free a moment ago, for a process that must come back on the same one. */
export async function freePort (): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}
