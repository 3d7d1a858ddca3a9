/** Waiting for something that may never finish, without a timer that outlives the wait. */

/** Resolves whether `promise` fulfilled within `ms`; its rejection within `ms` rejects this. */
export async function fulfilsWithin (promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      promise.then(() => true),
      new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), ms).unref() })
    ])
  } finally {
    clearTimeout(timer)
  }
}
