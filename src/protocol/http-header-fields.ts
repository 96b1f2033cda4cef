/**
 * `HttpRequest.headers`: a ReadonlyMap over one array of name, value, name, value... in the
 * order the names first came. A Map's hash table costs ~1.2 KiB per request here (measured,
 * Bun 1.4.5), this ~0.2 KiB; a request has few fields (at most maxHeaderCount), and a lookup
 * by an interned name is a scan of pointer compares.
 */
export class HeaderFields implements ReadonlyMap<string, string> {
  #pairs: string[];
  #length: number;

  /**
   * `pairs[0, length)`: name, value, name, value...; names unique and lower case. Kept, not
   * copied.
   */
  constructor(pairs: string[], length: number = pairs.length) {
    this.#pairs = pairs;
    this.#length = length;
  }

  /** Points these fields at other contents (a parser that reuses its request). */
  reassign(pairs: string[], length: number): void {
    this.#pairs = pairs;
    this.#length = length;
  }

  get size(): number {
    return this.#length >> 1;
  }

  get(name: string): string | undefined {
    const pairs = this.#pairs;
    const length = this.#length;
    for (let i = 0; i < length; i += 2) {
      if (pairs[i] === name) return pairs[i + 1];
    }
    return undefined;
  }

  has(name: string): boolean {
    return this.get(name) !== undefined;
  }

  forEach(
    callback: (value: string, name: string, map: ReadonlyMap<string, string>) => void,
    thisArg?: unknown,
  ): void {
    const pairs = this.#pairs;
    for (let i = 0; i < this.#length; i += 2) {
      callback.call(thisArg, pairs[i + 1] as string, pairs[i] as string, this);
    }
  }

  *entries(): MapIterator<[string, string]> {
    const pairs = this.#pairs;
    for (let i = 0; i < this.#length; i += 2) {
      yield [pairs[i] as string, pairs[i + 1] as string];
    }
  }

  *keys(): MapIterator<string> {
    const pairs = this.#pairs;
    for (let i = 0; i < this.#length; i += 2) yield pairs[i] as string;
  }

  *values(): MapIterator<string> {
    const pairs = this.#pairs;
    for (let i = 1; i < this.#length; i += 2) yield pairs[i] as string;
  }

  [Symbol.iterator](): MapIterator<[string, string]> {
    return this.entries();
  }

  get [Symbol.toStringTag](): string {
    return "HeaderFields";
  }
}
