import { ConfigError } from '@vecmill/shared/errors';
import { float16ToFloat32 } from '@vecmill/shared/formats/float16';
import { readEmbeddingTable, type EmbeddingTable, type Modality } from '@vecmill/shared/formats/embedding-table';
import { readManifestIfPublished, type Manifest } from '@vecmill/shared/manifest';
import { modalities, type RunPlan } from '@vecmill/shared/run-plan';
import type { ObjectStore } from '@vecmill/shared/storage/object-store';

/** Finds an embedding computed by an earlier run for the same content, or undefined. */
export interface ReuseLookup {
  find(modality: Modality, sha256: Uint8Array): Promise<Float32Array | undefined>;
}

/** Parts kept decoded at once: consecutive splits of an unchanged dataset hit the same part. */
const cachedParts = 2;
/** Rows per part are below this, so (part, row) packs into one safe integer. */
const partStride = 2 ** 26;

/**
 * `--reuse PREVIOUS_OUTPUT`: an index from content hash (sha256 of the caption, of the decoded
 * image bytes) to where the previous run stored that row's embedding. Only hashes and positions
 * are held in memory; embeddings are read part by part when asked for. The previous output must
 * be published and made by the same model files with the same settings, or reusing would mix
 * incomparable vectors.
 */
export class ReuseIndex implements ReuseLookup {
  private readonly cache = new Map<number, EmbeddingTable>();

  private constructor(
    private readonly store: ObjectStore,
    private readonly parts: readonly string[],
    private readonly positions: Readonly<Record<Modality, Map<string, number>>>,
    readonly previousRunId: string,
  ) {}

  /** Opens a previous output and indexes its hashes; refuses outputs that cannot be reused by this plan. */
  static async open(store: ObjectStore, plan: RunPlan): Promise<ReuseIndex> {
    const manifest = await readManifestIfPublished(store);
    if (manifest === undefined) {
      throw new ConfigError(`--reuse ${store.description}: not a published vecmill output (no _SUCCESS); point it at last night's finished output`, { reuse: store.description });
    }
    const mismatch = incompatibility(manifest, plan);
    if (mismatch !== undefined) {
      throw new ConfigError(`--reuse ${store.description}: the previous run used a different ${mismatch}, so its embeddings are not comparable; drop --reuse for this run`, { reuse: store.description });
    }
    const parts = manifest.files.map((f) => f.key).filter((k) => k.startsWith('embeddings/')).sort();
    const positions: Record<Modality, Map<string, number>> = { text: new Map(), image: new Map() };
    for (let p = 0; p < parts.length; p++) {
      const table = readEmbeddingTable(await store.read(parts[p] as string), parts[p]);
      for (const modality of ['text', 'image'] as const) {
        if (!(modality === 'text' ? table.hasText : table.hasImage)) continue;
        const present = table.present(modality);
        for (let r = 0; r < table.numRows; r++) {
          if (present[r] !== 1) continue;
          const hash = table.contentHash(modality, r);
          if (hash !== undefined) positions[modality].set(Buffer.from(hash).toString('base64'), p * partStride + r);
        }
      }
    }
    return new ReuseIndex(store, parts, positions, manifest.runId);
  }

  /** Hashes indexed per modality, for logs. */
  get size(): { text: number; image: number } {
    return { text: this.positions.text.size, image: this.positions.image.size };
  }

  async find(modality: Modality, sha256: Uint8Array): Promise<Float32Array | undefined> {
    const at = this.positions[modality].get(Buffer.from(sha256).toString('base64'));
    if (at === undefined) return undefined;
    const part = Math.floor(at / partStride);
    const table = await this.part(part);
    const values = table.embeddings(modality, at % partStride, (at % partStride) + 1);
    return values instanceof Uint16Array ? float16ToFloat32(values) : Float32Array.from(values);
  }

  private async part(p: number): Promise<EmbeddingTable> {
    const hit = this.cache.get(p);
    if (hit !== undefined) return hit;
    const table = readEmbeddingTable(await this.store.read(this.parts[p] as string), this.parts[p]);
    this.cache.set(p, table);
    if (this.cache.size > cachedParts) this.cache.delete(this.cache.keys().next().value as number);
    return table;
  }
}

/** What differs between a previous output and this plan that makes its embeddings unusable here. */
function incompatibility(m: Manifest, plan: RunPlan): string | undefined {
  if (m.model.fingerprint.id !== plan.model.fingerprint.id) return 'model (fingerprint differs)';
  if (m.model.dtype !== plan.model.dtype) return '--dtype';
  if (m.normalized !== plan.settings.normalize) return 'normalization';
  if (JSON.stringify(m.model.preprocessing ?? null) !== JSON.stringify(plan.model.preprocessing ?? null)) return 'preprocessing';
  if (m.settings.fastDecode !== plan.settings.fastDecode) return '--fast-decode';
  if (m.settings.trimText !== plan.settings.trimText) return '--no-trim-text';
  if (m.model.contextLength !== plan.model.contextLength) return '--context-length';
  if (m.dtype !== plan.settings.outDtype) return '--out-dtype';
  if (modalities(plan.settings.kind).image && m.settings.cmykConversion !== plan.settings.cmykConversion) {
    return 'CMYK conversion (vecmill before 2026-12-07 converted CMYK images through sRGB; they now convert as Pillow does)';
  }
  return undefined;
}
