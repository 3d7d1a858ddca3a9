/** The version of this package, read once from its package.json. */
import { existsSync, readFileSync } from 'node:fs'

// The package root is one level up from lib/ in the sources and two levels up from dist/lib/.
const packageJson = [new URL('../package.json', import.meta.url), new URL('../../package.json', import.meta.url)].find((url) => existsSync(url))

/** This package's version, as the node registry reports it. */
export const PACKAGE_VERSION: string = (JSON.parse(readFileSync(packageJson ?? new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version
