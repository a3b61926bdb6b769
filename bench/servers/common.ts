/** Commands every bench server child answers, besides its own. */
import { writeHeapSnapshot } from 'node:v8'
import type { Handlers } from '../ipc.js'

/** `gc` (the child runs with --expose-gc, so RSS is read after a full collection), `memory`, `heapSnapshot` and `stop`. */
export function serverHandlers (stop: () => Promise<void> | void): Handlers {
  return {
    gc: () => {
      const gc = (globalThis as { gc?: () => void }).gc
      gc?.()
      gc?.()
      return { collected: gc !== undefined }
    },
    /** Where the memory is: V8 heap vs off-heap (array buffers, native). */
    memory: () => process.memoryUsage(),
    /** For digging into per-connection memory: writes a .heapsnapshot and returns its path. */
    heapSnapshot: ({ dir }: { dir: string }) => ({ path: writeHeapSnapshot(`${dir}/gateway-${process.pid}-${Date.now()}.heapsnapshot`) }),
    stop: async () => {
      await stop()
      // answer first, then exit normally so --cpu-prof writes its profile
      setImmediate(() => process.exit(0))
      return {}
    }
  }
}
