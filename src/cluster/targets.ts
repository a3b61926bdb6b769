/** Who an action names, and the same action for a subset of them. */
import type { ClientAction } from '../../protocol/index.js'

/** The users an action names; empty for `all` and for one connection (`conn`, which is never forwarded). */
export function targetsOf (action: ClientAction): readonly string[] {
  if ('all' in action || 'conn' in action) return []
  return 'users' in action ? action.users : [action.user]
}

/** How many deliveries a forwarded action stands for: its named users (an `all` counts none). */
export function targetCount (action: ClientAction): number {
  return targetsOf(action).length
}

/** The action addressed to `users` only. */
export function forUsers (action: ClientAction, users: string[]): ClientAction {
  if (action.action === 'close') return { action: 'close', users, code: action.code, reason: action.reason }
  return { action: 'send', users, data: action.data, binary: action.binary }
}
