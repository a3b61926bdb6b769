/** Commands every bench server child answers, besides its own. */
import type { Handlers } from '../ipc.js'

/** `gc` (the child runs with --expose-gc, so RSS is read after a full collection) and `stop`. */
export function serverHandlers (stop: () => Promise<void> | void): Handlers {
  return {
    gc: () => {
      const gc = (globalThis as { gc?: () => void }).gc
      gc?.()
      gc?.()
      return { collected: gc !== undefined }
    },
    stop: async () => {
      await stop()
      // answer first, then exit normally so --cpu-prof writes its profile
      setImmediate(() => process.exit(0))
      return {}
    }
  }
}
