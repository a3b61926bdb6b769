/**
 * The ledger of acknowledged delivery from one gateway process (its
 * `hello.gateway` + `endpoint` + `session`), PROTOCOL.md §5a. Pure
 * bookkeeping, no I/O: which
 * events run and which are replays to skip, what the link's roster is after
 * a `sync`, and which `seq` to acknowledge. The backend does the calling and
 * the writing.
 */
import type { SyncUser } from '../../protocol/index.js'
import { clientKey } from './roster.js'

/** Acks go out at least this often while events flow (PROTOCOL.md §5a)... */
export const ACK_INTERVAL_MS = 100
/** ...and at once when this many events are waiting for one. */
export const ACK_EVERY_EVENTS = 1000

/**
 * `new`: run the handlers. `replayed`: this process already took it (before a
 * link blip); skip it. `backwards`: not above the last `seq` of this same
 * link, which no gateway sends; skip it as a bad event.
 */
export type Arrival = 'new' | 'replayed' | 'backwards'

/** A sync's users (as of `seq`) brought forward through the replay. */
export interface PendingRoster {
  users: SyncUser[]
  seq: number
}

export class AckLedger {
  /** P: the highest `seq` handed to the handlers. Marked on arrival, so a replay that races a still-running handler is skipped too. */
  private handed = 0
  /** The highest `seq` the SDK may acknowledge: its handlers returned (auto), or the service said so (manual). */
  private ackable = 0
  /** On the current link: the highest `seq` received (an ack never names one the gateway has not sent on it) and the highest ack sent. */
  private received = 0
  private sent = 0
  /** While the replay of S+1 … P goes by after a `sync` at S < P: the roster as of S plus those events' effects. */
  private pending?: { users: Map<string, SyncUser>, seq: number, until: number }

  /** `hello.session` of the gateway process whose `seq`s these are; another session starts a new ledger. */
  constructor (readonly session: string) {}

  /** A new link of this gateway said `hello`: nothing received or acked on it yet. */
  attach (): void {
    this.received = 0
    this.sent = 0
    this.pending = undefined
  }

  /**
   * A `sync` at `seq` (S). With P ≤ S the listed users are the roster now;
   * returns them. With P > S the events S+1 … P are about to be replayed:
   * the roster is pending until they have gone by (returns undefined).
   */
  sync (seq: number, users: readonly SyncUser[]): readonly SyncUser[] | undefined {
    this.received = seq
    this.sent = seq
    this.ackable = Math.max(this.ackable, seq)
    if (this.handed <= seq) {
      // a restarted backend (P = 0), or a gateway that gave up and treated everything as acked
      this.handed = seq
      this.pending = undefined
      return users
    }
    this.pending = { users: new Map(users.map((entry) => [clientKey(entry), entry])), seq, until: this.handed }
    return undefined
  }

  /** An event's `seq` as it arrives on the link: run it, skip it, or refuse it. */
  receive (seq: number): Arrival {
    if (seq <= this.received) return 'backwards'
    this.received = seq
    if (seq <= this.handed) return 'replayed'
    this.handed = seq
    return 'new'
  }

  /**
   * A skipped replay: its roster effect goes into the pending roster. Returns
   * that roster once the last event this process had taken (P) is by.
   */
  replayed (seq: number, effect: { event: string, user: string, conn?: string, claims?: SyncUser['claims'], params: SyncUser['params'] }): PendingRoster | undefined {
    if (!this.pending) return undefined
    const { user, conn } = effect
    if (effect.event === 'open') this.pending.users.set(clientKey(effect), { user, ...(conn === undefined ? {} : { conn }), claims: effect.claims ?? {}, params: effect.params })
    if (effect.event === 'close') this.pending.users.delete(clientKey(effect))
    return seq >= this.pending.until ? this.takePending() : undefined
  }

  /** The pending roster, if any, now: P was passed without being replayed (a gap the gateway should not leave). */
  takePending (): PendingRoster | undefined {
    const roster = this.pending && { users: [...this.pending.users.values()], seq: this.pending.seq }
    this.pending = undefined
    return roster
  }

  /** Auto mode: the handlers of `seq` returned (or were skipped because they ran before). */
  completed (seq: number): void {
    if (seq > this.ackable) this.ackable = seq
  }

  /** Manual mode: the service acknowledges `seq` and everything before it; never beyond what it has been handed. */
  allow (seq: number): void {
    this.completed(Math.min(seq, Math.max(this.handed, this.received)))
  }

  /** How many events are processed and not yet acked on the current link. */
  backlog (): number {
    return Math.max(0, Math.min(this.ackable, this.received) - this.sent)
  }

  /** The `seq` to acknowledge now on the current link, marked as sent; undefined when there is nothing new. */
  takeAck (): number | undefined {
    if (this.backlog() === 0) return undefined
    this.sent = Math.min(this.ackable, this.received)
    return this.sent
  }
}
