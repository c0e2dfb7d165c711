/**
 * A bound on how many chunks of a run are built and uploaded at once, across the splits in flight
 * (a counting semaphore, first come first served). Without it every split in flight builds its
 * chunk's files while another one's are still uploading, so `--concurrency` splits multiply the
 * chunk files in memory and the garbage of building them; with one slot, two splits hold no more
 * chunk files than one, while their batches still fill their own chunks side by side.
 */
export class ChunkSlots {
  private free: number;
  private readonly waiting: (() => void)[] = [];

  constructor(slots: number) {
    if (!Number.isInteger(slots) || slots <= 0) throw new RangeError(`chunk slots must be a positive integer, got ${slots}`);
    this.free = slots;
  }

  /** Resolves once a slot is free, with the function that gives it back (call it exactly once). */
  async acquire(): Promise<() => void> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next !== undefined) next();
      else this.free++;
    };
  }
}
