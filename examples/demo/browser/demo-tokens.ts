/** Gets and refreshes the player's short-lived demo token from the demo-only token route. */

/** Fetch a new token when the current one has less than this left: more than the client's refreshAheadMs (10 s), so its refresh gets a new one. */
const REFRESH_MARGIN_MS = 20_000

export class DemoTokens {
  private token = ''
  private expiresAt = 0

  constructor (readonly name: string) {}

  /** The token to present now (possibly stale: the handshake then fails with 401 and the socket retries). */
  get current (): string {
    return this.token
  }

  /** Asks for a token. Rejects with the route's message when it refuses. */
  async fetch (): Promise<void> {
    const response = await fetch('/demo/token', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: this.name })
    })
    const body = await response.json() as { token?: string, expiresAt?: number, message?: string }
    if (!response.ok || typeof body.token !== 'string') throw new Error(body.message ?? `token route answered ${response.status}`)
    this.token = body.token
    this.expiresAt = body.expiresAt ?? 0
  }

  /** Refreshes a token that is about to expire; never rejects, so a reconnect loop is never stuck. */
  async fresh (): Promise<void> {
    if (Date.now() < this.expiresAt - REFRESH_MARGIN_MS) return
    try {
      await this.fetch()
    } catch {
      // keep the old token: the gateway refuses it and the socket tries again later
    }
  }
}
