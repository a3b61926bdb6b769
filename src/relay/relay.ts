/**
 * One endpoint's relay, as the routes and the cluster see it: the client side
 * (client-side.ts: sockets in, events to the backend, hold and resume) and
 * action dispatch (action-dispatch.ts: the backend's actions out to sockets,
 * or on to the cluster). The two share only the endpoint's session registry.
 */
import type { WebSocket } from 'ws'
import type { ClientAction, CloseCode, Params } from '../../protocol/index.js'
import type { Identity } from '../auth/authenticator.js'
import type { Connection, Eviction, Ticket } from '../domain.js'
import type { ActionDispatch } from './action-dispatch.js'
import type { ClientSide } from './client-side.js'

export class EndpointRelay {
  constructor (private readonly clients: ClientSide, private readonly actions: ActionDispatch) {}

  get connections (): number {
    return this.clients.connections
  }

  start (): void {
    this.clients.start()
  }

  accept (socket: WebSocket, identity: Identity, ticket: Ticket): void {
    this.clients.accept(socket, identity, ticket)
  }

  dispatch (actions: readonly ClientAction[], forwarded = false): void {
    this.actions.dispatch(actions, forwarded)
  }

  registered (): Iterable<Connection> {
    return this.clients.registered()
  }

  async evict (user: string, id: string, why: Eviction, params?: Params): Promise<void | 'refreshed'> {
    return await this.clients.evict(user, id, why, params)
  }

  async reportLost (user: string, params: Params, conn?: string): Promise<void> {
    await this.clients.reportLost(user, params, conn)
  }

  reopen (user: string, id: string): void {
    this.clients.reopen(user, id)
  }

  closeAll (code: CloseCode): void {
    this.clients.closeAll(code)
  }

  async shutdown (timeoutMs: number): Promise<void> {
    await this.clients.shutdown(timeoutMs)
  }
}
