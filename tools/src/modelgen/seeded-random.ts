/**
 * A small, fast, seeded pseudo-random source for generated model weights. Every tensor gets its
 * own stream derived from (seed, tensor name), so a tensor's values never depend on the order in
 * which tensors are generated: a variant writer can regenerate any one tensor on demand instead
 * of keeping a 350 MB model in memory.
 */
export class SeededRandom {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** The stream for one named tensor: FNV-1a over the name, mixed with the model seed. */
  static forTensor(seed: number, tensorName: string): SeededRandom {
    let hash = 0x811c9dc5 ^ (seed >>> 0);
    for (let i = 0; i < tensorName.length; i++) {
      hash = Math.imul(hash ^ tensorName.charCodeAt(i), 0x01000193);
    }
    return new SeededRandom(Math.imul(hash ^ (hash >>> 16), 0x45d9f3b));
  }

  /**
   * Fills `out` with approximately normal values of mean 0 and the given standard deviation.
   * Each value is the sum of the four bytes of one 32-bit mulberry32 draw (Irwin-Hall), rescaled:
   * one draw per value keeps 150M values to about two seconds, and the tails are bounded (about
   * 3.5 sigma), which is harmless for weights and keeps int8 quantization scales tight.
   */
  fillNormal(out: Float32Array, std: number): void {
    // Four bytes each uniform on 0..255: mean 4 * 127.5 = 510, std sqrt(4 * (256^2 - 1) / 12).
    const scale = std / Math.sqrt((4 * (256 * 256 - 1)) / 12);
    let s = this.state;
    for (let i = 0; i < out.length; i++) {
      s = (s + 0x6d2b79f5) | 0;
      let t = Math.imul(s ^ (s >>> 15), 1 | s);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      t = (t ^ (t >>> 14)) >>> 0;
      out[i] = ((t & 255) + ((t >>> 8) & 255) + ((t >>> 16) & 255) + (t >>> 24) - 510) * scale;
    }
    this.state = s;
  }
}
