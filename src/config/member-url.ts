/** What `ws` would refuse in a member URL that the schema's `^wss?://` pattern lets through: checked at start (config) and at registration (admin API), not at the first dial. */
export function memberUrlProblem (text: string): string | undefined {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    return 'is not a valid URL'
  }
  if (url.hash !== '') return 'must not have a #fragment'
}
