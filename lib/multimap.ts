/**
 * Keys to small groups of values where most groups hold one value (a user's connections: usually one
 * device). A lone value is stored as is, and a Set made only when a second one joins it: an idle
 * connection does not pay for a Set per index it is in.
 */

/** A group of two or more; a class of its own, so a value is never taken for a group. */
class Group<V> extends Set<V> {}

const NOTHING: readonly never[] = []

export class Multimap<K, V> {
  readonly #map = new Map<K, V | Group<V>>()

  /** Keys with at least one value. */
  get size (): number {
    return this.#map.size
  }

  has (key: K): boolean {
    return this.#map.has(key)
  }

  /** The key's values in the order they were added (empty when none); a live view, not a copy, for groups. */
  values (key: K): Iterable<V> {
    const held = this.#map.get(key)
    if (held === undefined) return NOTHING
    return held instanceof Group ? held : [held]
  }

  /** The key's only value, or its group: what a hot path reads without allocating. */
  raw (key: K): V | ReadonlySet<V> | undefined {
    return this.#map.get(key)
  }

  /** Adds a value; returns false when the key held it already. */
  add (key: K, value: V): boolean {
    const held = this.#map.get(key)
    if (held === undefined) {
      this.#map.set(key, value)
      return true
    }
    if (held instanceof Group) {
      if (held.has(value)) return false
      held.add(value)
      return true
    }
    if (held === value) return false
    this.#map.set(key, new Group([held, value]))
    return true
  }

  /** Removes a value; returns false when the key did not hold it. The key goes with its last value. */
  delete (key: K, value: V): boolean {
    const held = this.#map.get(key)
    if (held === undefined) return false
    if (!(held instanceof Group)) {
      if (held !== value) return false
      this.#map.delete(key)
      return true
    }
    if (!held.delete(value)) return false
    if (held.size === 1) this.#map.set(key, held.values().next().value as V)
    return true
  }

  keys (): IterableIterator<K> {
    return this.#map.keys()
  }

  clear (): void {
    this.#map.clear()
  }
}
