// A package's dist/ is rebuilt from scratch so a tarball never carries a file the sources no longer have.
import { rmSync } from 'node:fs'
rmSync('dist', { recursive: true, force: true })
