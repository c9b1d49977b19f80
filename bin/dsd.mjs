#!/usr/bin/env node
// The `dsd` command. Runs the TypeScript sources directly through tsx, so that
// `npx dsd …` works right after `npm ci` with no build step.
import { register } from 'tsx/esm/api'

register()
const { main } = await import('../main/cli.ts')
process.exitCode = await main(process.argv.slice(2))
