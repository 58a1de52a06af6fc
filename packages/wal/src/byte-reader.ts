/**
 * Pulls exact-size reads out of an async stream of chunks. Reads that fall inside one chunk return a
 * view (no copy); reads that span chunks are copied into one buffer.
 */
export class ByteReader {
  readonly #iterator: AsyncIterator<Uint8Array>;
  readonly #watch: ChunkWatcher | undefined;
  #chunk: Buffer = Buffer.alloc(0);
  /** The current chunk as the source yielded it, while a watcher still has to hear that it is left. */
  #original: Uint8Array | undefined;
  #pos = 0;
  #done = false;
  /** Total bytes handed out by `read` so far. */
  consumed = 0;

  constructor(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, watch?: ChunkWatcher) {
    this.#iterator =
      Symbol.asyncIterator in source
        ? source[Symbol.asyncIterator]()
        : (async function* () {
            yield* source;
          })();
    this.#watch = watch;
  }

  async #fill(): Promise<boolean> {
    this.#leaveChunk();
    while (!this.#done) {
      const r = await this.#iterator.next();
      if (r.done) {
        this.#done = true;
        return false;
      }
      if (r.value.byteLength === 0) {
        this.#watch?.left(r.value);
        continue;
      }
      this.#chunk = Buffer.isBuffer(r.value)
        ? r.value
        : Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
      this.#pos = 0;
      if (this.#watch) {
        this.#original = r.value;
        this.#watch.entered(r.value, this.#chunk);
      }
      return true;
    }
    return false;
  }

  #leaveChunk(): void {
    const original = this.#original;
    if (original === undefined) return;
    this.#original = undefined;
    this.#chunk = Buffer.alloc(0);
    this.#pos = 0;
    this.#watch!.left(original);
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
   * The current chunk and the position of the next unread byte in it, for a consumer that reads
   * buffered bytes in place and then calls `skip`. The chunk is valid until the next read.
   */
  get buffered(): { chunk: Buffer; pos: number } {
    return { chunk: this.#chunk, pos: this.#pos };
  }

  /** Consumes `n` bytes that are already buffered (see `buffered`). */
  skip(n: number): void {
    if (n > this.#chunk.length - this.#pos) throw new RangeError(`cannot skip ${n} bytes: only ${this.#chunk.length - this.#pos} are buffered`);
    this.#pos += n;
    this.consumed += n;
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

  /** Stops the underlying stream early (calls its `return`), and leaves the current chunk. */
  async close(): Promise<void> {
    this.#leaveChunk();
    if (!this.#done) {
      this.#done = true;
      await this.#iterator.return?.();
    }
  }
}

/**
 * Hears when a ByteReader moves into a chunk of its source and when it leaves it (for the next one,
 * at the end, or on `close`), so a consumer that keeps parts of chunks in place knows which chunk
 * is current. Every chunk pulled from the source is left exactly once; an empty one is left
 * without being entered.
 */
export interface ChunkWatcher {
  /** `original` is the value the source yielded; `chunk` the same bytes as a Buffer. */
  entered(original: Uint8Array, chunk: Buffer): void;
  left(original: Uint8Array): void;
}
