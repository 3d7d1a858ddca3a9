// How the profile readers (profile-summary.ts, alloc-summary.ts) name a profile frame's source.

/** A source file shortened to what names it: the package under node_modules, or the path in the repo. */
export function where (url: string): string {
  if (url === '') return '(native)'
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (pkg !== null) return pkg[1] as string
  const own = /\/((?:bench|lib|plugins|dist)\/.*)$/.exec(url)
  return own?.[1] ?? url.replace(/^file:\/\//, '')
}
