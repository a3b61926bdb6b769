/** Who an action names, and the same action for a subset of them. */
import type { ClientAction } from '../../protocol/index.js'

/** The users an action names; empty for `all`. */
export function targetsOf (action: ClientAction): readonly string[] {
  if (action.action === 'send' && action.all === true) return []
  return action.users ?? [action.user as string]
}

/** How many deliveries a forwarded action stands for: its named users (an `all` counts none). */
export function targetCount (action: ClientAction): number {
  return targetsOf(action).length
}

/** The action addressed to `users` only. */
export function forUsers (action: ClientAction, users: string[]): ClientAction {
  const { user: _user, users: _users, ...rest } = action as ClientAction & { all?: true }
  return { ...rest, users } as ClientAction
}
