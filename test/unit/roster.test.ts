/** Roster: the SDK's table of who is connected through which link; each change comes back as the opens and closes to report. */
import t from 'tap'
import { InferredCloses, Roster, type LinkRelations, type RosterChange } from '../../src/sdk/roster.js'

/** Links are plain names here; "a1"/"a2" are links of cluster a. */
const clusterOf = (link: string): string => link.slice(0, 1)

function clustered (down: Set<string>): LinkRelations<string> {
  return { sameCluster: (a, b) => clusterOf(a) === clusterOf(b), isOpen: (link) => !down.has(link) }
}

/** A change as one readable line: "close alice@a1 4409 displaced" / "open alice@b1". */
function describe (changes: Array<RosterChange<string>>): string[] {
  return changes.map((c) => c.kind !== 'close'
    ? `${c.kind} ${c.presence.user}@${c.presence.link}`
    : `close ${c.presence.user}@${c.presence.link} ${c.code}${c.displaced ? ' displaced' : ''}`)
}

t.test('open and close of a user through one link', async (t) => {
  const roster = new Roster<string>()
  t.same(describe(roster.open('a1', 'alice', { sub: 'alice' }, { room: '1' })), ['open alice@a1'], 'an open is reported')
  t.same(roster.get('alice')?.params, { room: '1' }, 'with its params kept')
  t.ok(roster.linkOf('alice') === 'a1', 'alice is on a1')
  t.same(describe(roster.close('a1', 'alice', 1000, 'bye')), ['close alice@a1 1000'], 'a close is reported with its code')
  t.equal(roster.size, 0, 'and the user is gone')
})

t.test('a second open of a user closes the first: REPLACED on the same link, MOVED (and displaced) on another gateway', async (t) => {
  const roster = new Roster<string>()
  roster.open('a1', 'alice', {}, {})
  t.same(describe(roster.open('a1', 'alice', {}, {})), [`close alice@a1 ${InferredCloses.REPLACED.code}`, 'open alice@a1'], 'same link: replaced, then opened')
  const moved = roster.open('b1', 'alice', {}, {})
  t.same(describe(moved), [`close alice@a1 ${InferredCloses.MOVED.code} displaced`, 'open alice@b1'], 'another gateway: closed there too (displaced)')
  t.equal(moved[0].kind === 'close' && moved[0].reason, InferredCloses.MOVED.reason, 'with the MOVED reason')
})

t.test('gateways of one cluster settle duplicates themselves; a survivor may close a dead node\'s user', async (t) => {
  const down = new Set<string>()
  const roster = new Roster<string>(clustered(down))
  roster.open('a1', 'alice', {}, {})
  t.same(describe(roster.open('a2', 'alice', {}, {})), [`close alice@a1 ${InferredCloses.MOVED.code}`, 'open alice@a2'], 'a move within cluster a is not displaced')
  t.same(roster.close('a1', 'alice', 1000, 'late'), [], 'a late close from the old node of a live holder is ignored')
  down.add('a2')
  t.same(describe(roster.close('a1', 'alice', 1006, 'node lost')), ['close alice@a2 1006'], 'once a2 is down, a survivor of its cluster closes its user')
})

t.test('sync: absent users closed, unknown ones opened, changed claims or params closed and opened again', async (t) => {
  const roster = new Roster<string>()
  roster.open('a1', 'alice', { sub: 'alice' }, {})
  roster.open('a1', 'bob', {}, { room: '1' })
  roster.open('a1', 'carol', {}, {})
  roster.open('b1', 'dave', {}, {})
  const changes = roster.sync('a1', [
    { user: 'alice', claims: { sub: 'alice' }, params: {} },
    { user: 'bob', claims: {}, params: { room: '2' } },
    { user: 'erin', claims: {}, params: {} }
  ])
  t.same(describe(changes), [
    `close bob@a1 ${InferredCloses.ABSENT_FROM_SYNC.code}`,
    `close carol@a1 ${InferredCloses.ABSENT_FROM_SYNC.code}`,
    'open bob@a1',
    'open erin@a1'
  ], 'alice unchanged; bob re-opened with new params; carol closed; erin opened')
  t.same(roster.get('bob')?.params, { room: '2' }, 'bob has the synced params')
  t.ok(roster.linkOf('dave') === 'b1', 'a user of another link is untouched')
})

t.test('dropLink closes every user of a link; moveLink carries them to a new socket', async (t) => {
  const roster = new Roster<string>()
  roster.open('a1', 'alice', {}, {})
  roster.open('a1', 'bob', {}, {})
  roster.open('b1', 'carol', {}, {})
  roster.moveLink('a1', 'a1-new')
  t.ok(roster.linkOf('alice') === 'a1-new' && roster.linkOf('bob') === 'a1-new', 'both moved to the new socket')
  t.same(describe(roster.dropLink('a1-new')), [`close alice@a1-new ${InferredCloses.LINK_LOST.code}`, `close bob@a1-new ${InferredCloses.LINK_LOST.code}`], 'a dropped link closes its users')
  t.same(roster.users(), ['carol'], 'only the other link\'s user is left')
})

t.test('group splits users by link and lists the names not known', async (t) => {
  const roster = new Roster<string>()
  roster.open('a1', 'alice', {}, {})
  roster.open('b1', 'bob', {}, {})
  roster.open('a1', 'carol', {}, {})
  const { byLink, missing } = roster.group(['alice', 'bob', 'nobody', 'carol'])
  t.same([...byLink], [['a1', ['alice', 'carol']], ['b1', ['bob']]], 'grouped by link, order kept')
  t.same(missing, ['nobody'], 'an unknown user is missing')
})

t.test('bad input: a close for an unknown user, or from a link that does not hold them, changes nothing', async (t) => {
  const roster = new Roster<string>()
  roster.open('a1', 'alice', {}, {})
  t.same(roster.close('a1', 'nobody', 1000, ''), [], 'an unknown user: no change')
  t.same(roster.close('b1', 'alice', 1000, ''), [], 'a link that does not hold alice: no change')
  t.same(roster.dropLink('zz'), [], 'dropping an unknown link: no change')
  t.same(roster.sync('zz', []), [], 'an empty sync from an unknown link: no change')
  t.ok(roster.linkOf('alice') === 'a1', 'alice is still on a1')
})
