/**
 * Every Prometheus metric Gatehouse exports (docs/operations.md). One registry
 * per gateway instance, so several gateways in one process do not collide.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client'

/** One pool member's load, as its gauges show it. */
export interface MemberLoadSample {
  endpoint: string
  member: string
  keys: number
  clients: number
}

/** A pool's member loads now (src/pool/pool.ts). */
export type LoadSource = () => Iterable<MemberLoadSample>

/** One series of a scraped gauge: its labels and value. */
type Sample<L extends string> = [Record<L, string>, number]

/** Handshake tokens served from the verified-token caches (`hits`) and handed to their verifier (`misses`): src/auth/verified-tokens.ts. */
export interface TokenCacheCounts {
  hits: number
  misses: number
}

export class GatewayMetrics {
  readonly registry = new Registry()

  /**
   * Sources of the series read at each scrape (constructor), not set on
   * every change: set on every open and close (the pool's two on every loop
   * turn), they cost about a tenth of a handshake's CPU (bench:handshakes A/B).
   */
  private readonly connectionCounts = new Map<string, () => number>()
  private readonly loadSources = new Set<LoadSource>()
  private tokenCacheCounts?: () => TokenCacheCounts
  readonly handshakeFailures = new Counter({ name: 'gatehouse_handshake_failures_total', help: 'Refused client handshakes, by reason', labelNames: ['endpoint', 'reason'] as const, registers: [this.registry] })
  readonly clientCloses = new Counter({ name: 'gatehouse_client_closes_total', help: 'Client sockets ended, by close code', labelNames: ['endpoint', 'code'] as const, registers: [this.registry] })
  readonly resumes = new Counter({ name: 'gatehouse_resumes_total', help: 'Held sessions resumed by a reconnect within resumeGraceMs', labelNames: ['endpoint'] as const, registers: [this.registry] })
  readonly refreshes = new Counter({ name: 'gatehouse_refreshes_total', help: 'Live sessions moved to a new socket with a new token (PROTOCOL.md §5d), by where the old one was', labelNames: ['endpoint', 'from'] as const, registers: [this.registry] })
  readonly messagesIn = new Counter({ name: 'gatehouse_messages_in_total', help: 'Client frames relayed to the backend', labelNames: ['endpoint'] as const, registers: [this.registry] })
  readonly messagesOut = new Counter({ name: 'gatehouse_messages_out_total', help: 'Frames delivered to clients from send actions', labelNames: ['endpoint'] as const, registers: [this.registry] })
  readonly droppedActions = new Counter({ name: 'gatehouse_dropped_actions_total', help: 'Action deliveries that could not be made, by reason', labelNames: ['endpoint', 'reason'] as const, registers: [this.registry] })
  readonly droppedEvents = new Counter({ name: 'gatehouse_dropped_events_total', help: 'Events for a backend that were discarded, by reason', labelNames: ['endpoint', 'reason'] as const, registers: [this.registry] })
  readonly backendFrameErrors = new Counter({ name: 'gatehouse_backend_frame_errors_total', help: 'Backend frames or actions that were refused', labelNames: ['endpoint', 'reason'] as const, registers: [this.registry] })
  readonly linkUp = new Gauge({ name: 'gatehouse_link_up', help: '1 while the backend link is open', labelNames: ['endpoint', 'member'] as const, registers: [this.registry] })
  readonly linkReconnects = new Counter({ name: 'gatehouse_link_reconnects_total', help: 'Backend link (re)connections after the first', labelNames: ['endpoint', 'member'] as const, registers: [this.registry] })
  readonly queueEvents = new Gauge({ name: 'gatehouse_queue_events', help: 'Events waiting for the backend link', labelNames: ['endpoint', 'member'] as const, registers: [this.registry] })
  readonly queueBytes = new Gauge({ name: 'gatehouse_queue_bytes', help: 'Bytes of events waiting for the backend link', labelNames: ['endpoint', 'member'] as const, registers: [this.registry] })

  readonly poolMemberState = new Gauge({ name: 'gatehouse_pool_member_state', help: "1 for a pool member's current state (up, down, draining, out), 0 for the others", labelNames: ['endpoint', 'member', 'state'] as const, registers: [this.registry] })
  readonly poolFailovers = new Counter({ name: 'gatehouse_pool_failovers_total', help: 'Pool members whose keys were moved to other members: down past failoverMs, or left the pool', labelNames: ['endpoint', 'member'] as const, registers: [this.registry] })
  readonly poolRehomedClients = new Counter({ name: 'gatehouse_pool_rehomed_clients_total', help: 'Clients re-opened on another member by a failover', labelNames: ['endpoint'] as const, registers: [this.registry] })

  readonly jwksFetches = new Counter({ name: 'gatehouse_jwks_fetches_total', help: 'JWKS fetches by key set and result (ok, failed, cooldown: a fetch a handshake asked for within the cooldown, not made)', labelNames: ['jwks', 'result'] as const, registers: [this.registry] })

  readonly brokerUp = new Gauge({ name: 'gatehouse_broker_up', help: '1 while the cluster broker (Redis) is reachable; always 1 for a node alone', registers: [this.registry] })
  readonly brokerErrors = new Counter({ name: 'gatehouse_broker_errors_total', help: 'Broker (Redis) operations that failed, by operation', labelNames: ['op'] as const, registers: [this.registry] })
  readonly clusterClaims = new Counter({ name: 'gatehouse_cluster_claims_total', help: 'Handshakes registered with the cluster, by what the claim found', labelNames: ['endpoint', 'outcome'] as const, registers: [this.registry] })
  readonly clusterForwards = new Counter({ name: 'gatehouse_cluster_forwards_total', help: 'Actions carried between nodes, by direction', labelNames: ['endpoint', 'direction'] as const, registers: [this.registry] })
  readonly clusterLostUsers = new Counter({ name: 'gatehouse_cluster_lost_users_total', help: 'Users of dead nodes reported closed (1006) by this node', labelNames: ['endpoint'] as const, registers: [this.registry] })

  constructor () {
    collectDefaultMetrics({ register: this.registry, prefix: 'gatehouse_' })
    // written by nobody: each reads its source at the scrape (methods below)
    this.scraped('gatehouse_connections', 'Client sessions: open sockets, and sessions held for a resume', ['endpoint'], () => this.countConnections())
    this.scraped('gatehouse_token_cache_total', 'Handshake tokens answered from the verified-token cache (hit) or handed to their verifier (miss)', ['result'], () => this.tokenCacheSamples(), Counter)
    this.scraped('gatehouse_pool_member_keys', 'Routing keys assigned to a pool member, lingering ones included', ['endpoint', 'member'], () => this.loads('keys'))
    this.scraped('gatehouse_pool_member_clients', 'Clients routed to a pool member', ['endpoint', 'member'], () => this.loads('clients'))
  }

  /** Counts an endpoint's client sessions (held ones included) at every scrape. */
  addConnectionCount (endpoint: string, count: () => number): void {
    this.connectionCounts.set(endpoint, count)
  }

  /** Reads the verified-token cache's hits and misses (src/auth/verified-tokens.ts) at every scrape. */
  readTokenCacheFrom (read: () => TokenCacheCounts): void {
    this.tokenCacheCounts = read
  }

  /** Adds a pool's member loads to every scrape; the function returned takes them out. */
  addLoadSource (source: LoadSource): () => void {
    this.loadSources.add(source)
    return () => { this.loadSources.delete(source) }
  }

  private * countConnections (): Iterable<Sample<'endpoint'>> {
    for (const [endpoint, count] of this.connectionCounts) yield [{ endpoint }, count()]
  }

  private * tokenCacheSamples (): Iterable<Sample<'result'>> {
    const counts = this.tokenCacheCounts?.()
    if (counts === undefined) return
    yield [{ result: 'hit' }, counts.hits]
    yield [{ result: 'miss' }, counts.misses]
  }

  private * loads (field: 'keys' | 'clients'): Iterable<Sample<'endpoint' | 'member'>> {
    for (const source of this.loadSources) for (const load of source()) yield [{ endpoint: load.endpoint, member: load.member }, load[field]]
  }

  /** A gauge (or a counter of totals kept elsewhere) whose series are `samples()` at each scrape: a series no longer listed goes. */
  private scraped<L extends string> (name: string, help: string, labelNames: readonly L[], samples: () => Iterable<Sample<L>>, Kind: typeof Gauge | typeof Counter = Gauge): void {
    this.registry.registerMetric(new Kind<L>({
      name,
      help,
      labelNames,
      registers: [],
      collect (this: Gauge<L> | Counter<L>) {
        this.reset()
        for (const [labels, value] of samples()) this.inc(labels, value)
      }
    }))
  }
}
