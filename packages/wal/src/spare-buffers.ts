/**
 * Buffers kept for reuse, up to `max` of them, each with one user at a time: `take` removes a spare
 * of at least the size asked (or allocates one, of at least `minBytes`, with `alloc`), `give` puts one back.
 */
export class SpareBuffers {
  readonly #list: Buffer[] = [];

  constructor(
    readonly max: number,
    readonly minBytes = 0,
    readonly alloc: (bytes: number) => Buffer = Buffer.allocUnsafeSlow,
  ) {}

  take(bytes: number): Buffer {
    const i = this.#list.findIndex((b) => b.length >= bytes);
    return i >= 0 ? this.#list.splice(i, 1)[0]! : this.alloc(Math.max(bytes, this.minBytes));
  }

  give(b: Buffer | undefined): void {
    if (b && this.#list.length < this.max) this.#list.push(b);
  }
}
