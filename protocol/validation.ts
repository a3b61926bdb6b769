import type { ErrorObject } from 'ajv'
import type { Params } from './schemas.js'

/**
 * Turns ajv errors into `path.to.field: message` lines, the form every
 * validation error in Gatehouse takes (config and wire frames alike).
 */
export function formatSchemaErrors (errors: ErrorObject[] | null | undefined, root = ''): string[] {
  if (!errors || errors.length === 0) return []
  const lines = errors
    // the branches of a oneOf/if repeat what the wrapper says better
    .filter((e) => e.keyword !== 'if' && !/\/(oneOf|anyOf)\//.test(e.schemaPath))
    .map((e) => {
      let path = jsonPointerToPath(e.instancePath, root)
      let message = e.message ?? 'is invalid'
      const choices = requiredChoices(e)
      if (choices) {
        message = `must have exactly one of ${choices.join(', ')}`
      } else if (e.keyword === 'anyOf' && Array.isArray(e.schema)) {
        message = `must be ${(e.schema as SchemaBranch[]).map(describeBranch).join(' or ')}`
      } else if (e.keyword === 'additionalProperties') {
        path = joinPath(path, String(e.params.additionalProperty))
        message = 'is not a known field'
      } else if (e.keyword === 'required') {
        path = joinPath(path, String(e.params.missingProperty))
        message = 'is required'
      } else if (e.keyword === 'enum') {
        message = `must be one of ${(e.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`
      }
      return `${path || '(root)'}: ${message}`
    })
  return [...new Set(lines)]
}

function jsonPointerToPath (pointer: string, root: string): string {
  let path = root
  for (const raw of pointer.split('/').slice(1)) {
    const part = raw.replace(/~1/g, '/').replace(/~0/g, '~')
    path = /^\d+$/.test(part) ? `${path}[${part}]` : joinPath(path, part)
  }
  return path
}

function joinPath (path: string, key: string): string {
  return path ? `${path}.${key}` : key
}

/** Names in a `oneOf: [{required: [a]}, {required: [b]}]` (needs ajv `verbose`). */
function requiredChoices (e: ErrorObject): string[] | undefined {
  if (e.keyword !== 'oneOf' || !Array.isArray(e.schema)) return undefined
  const names = (e.schema as Array<{ required?: string[] }>).map((branch) => branch.required?.[0])
  return names.every((n): n is string => typeof n === 'string') ? names : undefined
}

interface SchemaBranch { const?: unknown, minimum?: number, maximum?: number, type?: string }

function describeBranch (branch: SchemaBranch): string {
  if ('const' in branch) return JSON.stringify(branch.const)
  if (branch.minimum !== undefined && branch.maximum !== undefined) return `${branch.minimum}-${branch.maximum}`
  return branch.type ?? 'another form'
}

/** A path's parameters as the wire carries them: a JSON object of strings. For data no schema has checked yet. */
export function isParams (value: unknown): value is Params {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && Object.values(value).every((v) => typeof v === 'string')
}
