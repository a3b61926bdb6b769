/**
 * The error catalog: every GW_ERR_* lives in src/errors.ts, and a refused
 * handshake's metric label comes from its error, the labels being the ones
 * docs/operations.md lists and the codes the ones protocol/PROTOCOL.md lists (§6, §10).
 */
import t from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import createError from '@fastify/error'
import * as errors from '../../src/errors.js'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..')
const catalog = Object.entries(errors).filter(([name]) => name.startsWith('GW_ERR_')) as Array<[string, new () => Error & { code: string }]>

function sources (dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((f) => f.isFile() && f.name.endsWith('.ts'))
    .map((f) => join(f.parentPath, f.name))
}

t.test('no GW_ERR_ error is created outside src/errors.ts', async (t) => {
  const elsewhere = [...sources('src'), ...sources('routes'), ...sources('protocol')]
    .filter((file) => !file.endsWith(join('src', 'errors.ts')) && /createError\(\s*'GW_ERR_/.test(readFileSync(file, 'utf8')))
  t.same(elsewhere, [], 'every createError(\'GW_ERR_…\') is in src/errors.ts')
})

t.test('each refusal carries the label docs/operations.md lists for gatehouse_handshake_failures_total', async (t) => {
  const row = readFileSync(join(ROOT, 'docs', 'operations.md'), 'utf8').split('\n').find((l) => l.startsWith('| `gatehouse_handshake_failures_total`'))
  t.ok(row, 'docs/operations.md has a row for the metric')
  const documented = [...(row ?? '').split('|')[3].matchAll(/`([a-z_]+)`/g)].map((m) => m[1]).sort()
  const labels = catalog.map(([, E]) => errors.refusalReason(new E())).filter((r) => r !== undefined).sort()
  t.same(labels, documented, 'the refusals\' labels are exactly the documented ones')
  t.equal(new Set(labels).size, labels.length, 'no two refusals share a label')
})

t.test('an error that is no handshake refusal has no label', async (t) => {
  t.equal(errors.refusalReason(new errors.GW_ERR_NOT_FOUND('/x')), undefined, 'a 404 is not counted as a refused handshake')
  t.equal(errors.refusalReason(new errors.GW_ERR_CONFIG('x')), undefined, 'nor a config error')
  t.equal(errors.refusalReason(new Error('boom')), undefined, 'nor a plain error')
  const lookalike = createError('GW_ERR_DUPLICATE', 'same code, another class', 409)
  t.equal(errors.refusalReason(new lookalike()), undefined, 'the class counts, not the code')
})

t.test('every GW_ERR_ code in the catalog has a row in a table of protocol/PROTOCOL.md (§6 handshakes, §10 pool admin)', async (t) => {
  const protocol = readFileSync(join(ROOT, 'protocol', 'PROTOCOL.md'), 'utf8')
  for (const [name, E] of catalog) {
    if (name === 'GW_ERR_CONFIG') continue
    t.match(protocol, new RegExp(`\\| \\d{3} \\| \`${new E().code}\` \\|`), `${name} has a row`)
  }
})
