/**
 * Pulls exact-size reads out of an async stream of chunks. Reads that fall inside one chunk return a
 * view (no copy); reads that span chunks are copied into one buffer.
 */
export class ByteReader {
  readonly #iterator: AsyncIterator<Uint8Array>;
  #chunk: Buffer = Buffer.alloc(0);
  #pos = 0;
  #done = false;
  /** Total bytes handed out by `read` so far. */
  consumed = 0;

  constructor(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>) {
    this.#iterator =
      Symbol.asyncIterator in source
        ? source[Symbol.asyncIterator]()
        : (async function* () {
            yield* source;
          })();
  }

  async #fill(): Promise<boolean> {
    while (!this.#done) {
      const r = await this.#iterator.next();
      if (r.done) {
        this.#done = true;
        return false;
      }
      if (r.value.byteLength === 0) continue;
      this.#chunk = Buffer.isBuffer(r.value)
        ? r.value
        : Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
      this.#pos = 0;
      return true;
    }
    return false;
  }

  /** Returns exactly `n` bytes, or fewer only when the stream ends first (an empty buffer at the end). */
  async read(n: number): Promise<Buffer> {
    if (this.#pos >= this.#chunk.length && !(await this.#fill())) return Buffer.alloc(0);
    const available = this.#chunk.length - this.#pos;
    if (available >= n) {
      const out = this.#chunk.subarray(this.#pos, this.#pos + n);
      this.#pos += n;
      this.consumed += n;
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      if (this.#pos >= this.#chunk.length && !(await this.#fill())) break;
      const take = Math.min(n - filled, this.#chunk.length - this.#pos);
      this.#chunk.copy(out, filled, this.#pos, this.#pos + take);
      this.#pos += take;
      filled += take;
    }
    this.consumed += filled;
    return filled === n ? out : out.subarray(0, filled);
  }

  /**
   * Returns a view of the next `n` bytes when they are already buffered in the current chunk, without
   * waiting; otherwise returns undefined and consumes nothing (call `read` then).
   */
  takeBuffered(n: number): Buffer | undefined {
    if (this.#chunk.length - this.#pos < n) return undefined;
    const out = this.#chunk.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    this.consumed += n;
    return out;
  }

  /**
   * Copies exactly `n` bytes into `target` at `offset` (fewer only when the stream ends first) and
   * returns how many were copied. Unlike `read`, it never allocates.
   */
  async readInto(target: Buffer, offset: number, n: number): Promise<number> {
    let filled = 0;
    while (filled < n) {
      if (this.#pos >= this.#chunk.length && !(await this.#fill())) break;
      const take = Math.min(n - filled, this.#chunk.length - this.#pos);
      this.#chunk.copy(target, offset + filled, this.#pos, this.#pos + take);
      this.#pos += take;
      filled += take;
    }
    this.consumed += filled;
    return filled;
  }

  /** Returns whatever is buffered or next in the stream, up to `max` bytes; empty at the end. */
  async readSome(max: number): Promise<Buffer> {
    if (this.#pos >= this.#chunk.length && !(await this.#fill())) return Buffer.alloc(0);
    const take = Math.min(max, this.#chunk.length - this.#pos);
    const out = this.#chunk.subarray(this.#pos, this.#pos + take);
    this.#pos += take;
    this.consumed += take;
    return out;
  }

  /** Returns true when no byte is left. */
  async atEnd(): Promise<boolean> {
    if (this.#pos < this.#chunk.length) return false;
    return !(await this.#fill());
  }

  /** Stops the underlying stream early (calls its `return`). */
  async close(): Promise<void> {
    if (!this.#done) {
      this.#done = true;
      await this.#iterator.return?.();
    }
  }
}
