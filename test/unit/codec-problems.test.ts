/**
 * A frame's problems (protocol/problems.ts): described one by one up to a
 * bound, then only counted per kind, in the JSON decoder as in the binary
 * one, so a frame of millions of tiny bad items (`[{},{},...]` is 3 bytes an
 * item) builds at most a hundred messages, not one each.
 */
import t from 'tap'
import { decodeActions, decodeEvents } from '../../protocol/index.js'
import { MAX_DETAILED_PROBLEMS } from '../../protocol/problems.js'

const total = (errors: Array<{ count?: number }>): number => errors.reduce((n, e) => n + (e.count ?? 1), 0)

t.test('a million bad actions in one frame: a hundred described, the rest one count', async (t) => {
  const frame = `[${Array.from({ length: 1_000_000 }, () => '{}').join(',')},{"action":"send","user":"u","data":1}]`
  const { items, errors } = decodeActions(frame)
  t.equal(items.length, 1, 'the good action after them is still decoded')
  t.equal(errors.length, MAX_DETAILED_PROBLEMS + 1, 'a hundred problems and one summary')
  t.equal(total(errors), 1_000_000, 'every bad action is counted')
  t.match(errors[0].message, /^action\[0\]\.action: must be one of /, 'the first problem is named')
  t.same(errors.at(-1), { kind: 'invalid_message', message: `${1_000_000 - MAX_DETAILED_PROBLEMS} more invalid_message problems in this frame`, count: 1_000_000 - MAX_DETAILED_PROBLEMS }, 'the summary counts the rest')
})

t.test('the SDK side too: bad events past the bound are counted, not described', async (t) => {
  const { errors } = decodeEvents(`[${Array.from({ length: 5000 }, () => '{"event":"message"}').join(',')}]`)
  t.equal(errors.length, MAX_DETAILED_PROBLEMS + 1, 'a hundred problems and one summary')
  t.equal(total(errors), 5000, 'every bad event is counted')
})

t.test('bad input: not JSON is one problem; a lone bad object is named without an index', async (t) => {
  t.same(decodeActions('{"action":').errors.map((e) => e.kind), ['invalid_json'], 'not JSON')
  t.match(decodeActions('{"action":"explode"}').errors[0].message, /^action\.action: must be one of/, 'a lone object has no index')
})
