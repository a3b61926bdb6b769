/**
 * The usual rig of a test: a real gateway whose endpoints each dial their own
 * test backend, every link up (hello, and sync if asked) before the test
 * starts; everything closed at teardown.
 */
import { backendFor, type ReceivedEvent, type TestBackend } from './backend.js'
import { startGateway, testConfig, type TestGateway } from './gateway.js'

export interface BackedEndpoint {
  name: string
  path: string
  /** Link options besides the url (which comes from the endpoint's backend); none: testConfig's quick reconnects. */
  link?: Record<string, unknown>
  [key: string]: unknown
}

export interface Rig {
  gateway: TestGateway
  /** Each endpoint's backend, by endpoint name. */
  backends: Record<string, TestBackend>
  /** The hello each backend got, by endpoint name. */
  hellos: Record<string, ReceivedEvent>
}

export async function gatewayWithBackends (
  t: { teardown (fn: () => unknown): void },
  endpoints: BackedEndpoint[],
  overrides: Record<string, unknown> = {},
  options: { sync?: boolean } = {}
): Promise<Rig> {
  const backends: Record<string, TestBackend> = {}
  for (const { name } of endpoints) backends[name] = await backendFor(t)
  const gateway = await startGateway(t, testConfig(endpoints.map(({ link, ...endpoint }) => ({
    ...endpoint,
    backend: link ? { url: backends[endpoint.name].url, ...link } : backends[endpoint.name].url
  })), overrides))
  const hellos: Record<string, ReceivedEvent> = {}
  for (const { name } of endpoints) {
    hellos[name] = await backends[name].next('hello')
    if (options.sync) await backends[name].next('sync')
  }
  return { gateway, backends, hellos }
}
