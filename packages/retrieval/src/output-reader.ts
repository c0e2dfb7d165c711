import { ConfigError, InputError } from '@vecmill/shared/errors';
import { COLUMNS, readEmbeddingTable, type EmbeddingDtype, type EmbeddingTable, type Modality } from '@vecmill/shared/formats/embedding-table';
import { manifestFormat, partRanges, readManifest, type Manifest, type PartRange } from '@vecmill/shared/manifest';
import { modalities, outputKeys } from '@vecmill/shared/run-plan';
import { formatLocation, parseLocation } from '@vecmill/shared/storage/location';
import type { ObjectStore } from '@vecmill/shared/storage/object-store';
import { openStore } from '@vecmill/shared/storage/open-store';
import type { S3ClientOptions } from '@vecmill/shared/storage/s3-store';
import type { VersionedJsonFormat } from '@vecmill/shared/versioned-json';

/** One vector index recorded in manifest.json by `vecmill index` (its full description is the `index.json` sidecar). */
export interface ManifestIndexEntry {
  /** Key of the index file inside the output. */
  readonly key: string;
  /** Key of the sidecar JSON describing it. */
  readonly descriptor: string;
  readonly modality: Modality;
  readonly metric: string;
  readonly library: string;
  readonly rows: number;
}

/**
 * manifest.json as retrieval reads it: the merger's manifest plus the `indexes` that `vecmill
 * index` adds afterwards (the merger never writes that field, so it is optional).
 */
export type RetrievalManifest = Manifest & { readonly indexes?: readonly ManifestIndexEntry[] };

/** manifest.json's format as retrieval reads it: the merger's fields plus the optional index entries. */
export const retrievalManifestFormat: VersionedJsonFormat<RetrievalManifest> = {
  ...manifestFormat,
  fields: {
    ...manifestFormat.fields,
    'indexes[].key': 'string?',
    'indexes[].descriptor': 'string?',
    'indexes[].modality': 'string?',
    'indexes[].metric': 'string?',
    'indexes[].library': 'string?',
  },
};

/** Published rows of one part that have every embedding asked for. */
export interface RowsBlock {
  /** Row ids (`row_index`: `split × 2^32 + line`, or 0…n-1 in version 1 outputs), ascending. */
  readonly ids: BigInt64Array;
  /** Per modality, `ids.length × dims` values: float32, or float16 bit patterns when the output is float16. */
  readonly vectors: ReadonlyMap<Modality, Float32Array | Uint16Array>;
  readonly captions: readonly (string | null)[];
  readonly sources: readonly string[];
  readonly offsets: readonly number[];
}

/** A RowsBlock seen through one modality: what search, indexing and evaluation consume. */
export interface OutputBlock extends RowsBlock {
  readonly embeddings: Float32Array | Uint16Array;
}

/** One published row, as search results and exports show it. */
export interface OutputRow {
  readonly id: bigint;
  readonly caption: string | null;
  readonly source: string;
  readonly offset: number;
}

/**
 * A published vecmill output opened for retrieval. It refuses outputs without `_SUCCESS` (a run
 * still in progress or a failed one would silently give partial answers) and reads the Parquet
 * parts one at a time, so memory is one part's worth whatever the output's size. Outputs of both
 * manifest versions are read (`partRanges`).
 */
export class PublishedOutput {
  private readonly parts: readonly PartRange[];

  private constructor(
    readonly store: ObjectStore,
    readonly manifest: RetrievalManifest,
  ) {
    this.parts = partRanges(manifest);
  }

  /** Opens the output in `store`; `name` (its location) appears in the error when it is not published. */
  static async open(store: ObjectStore, name = store.description): Promise<PublishedOutput> {
    if (!(await store.exists(outputKeys.success))) {
      throw new InputError(`${name} holds no published run (no _SUCCESS): wait for the run to finish, or point at a vecmill output folder`, { output: name });
    }
    return new PublishedOutput(store, await readManifest(store, retrievalManifestFormat));
  }

  get dims(): number {
    return this.manifest.dims;
  }

  get dtype(): EmbeddingDtype {
    return this.manifest.dtype;
  }

  /** The modalities this output has embeddings for, image first. */
  get modalities(): Modality[] {
    const has = modalities(this.manifest.settings.kind);
    return [...(has.image ? (['image'] as const) : []), ...(has.text ? (['text'] as const) : [])];
  }

  /** Throws ConfigError naming the modalities there are, when the output lacks `modality`. */
  requireModality(modality: Modality): void {
    if (!this.modalities.includes(modality)) {
      throw new ConfigError(`${this.store.description} has no ${modality} embeddings (input kind ${this.manifest.settings.kind}); use --modality ${this.modalities.join(' or ')}`, {
        modality,
      });
    }
  }

  /**
   * Every row with an embedding of `modality`, one block per part, in id order. Rows that failed
   * are skipped. With `requireAll`, only rows that have every embedding the run asked for (the
   * rows of the `.npy` layout, and the pairs evaluation compares).
   */
  async *blocks(modality: Modality, options: { readonly requireAll?: boolean } = {}): AsyncGenerator<OutputBlock> {
    this.requireModality(modality);
    for await (const block of this.rowBlocks(options.requireAll === true ? this.modalities : [modality])) {
      yield { ...block, embeddings: block.vectors.get(modality)! };
    }
  }

  /** The rows that have an embedding of every one of `modalities`, with all of them, one block per part. */
  async *rowBlocks(modalities: readonly Modality[]): AsyncGenerator<RowsBlock> {
    for (const m of modalities) this.requireModality(m);
    for (const part of this.parts) {
      if (part.rows === 0) continue;
      const table = await this.readPart(part.key);
      const present = modalities.map((m) => table.present(m));
      const keep: number[] = [];
      for (let i = 0; i < table.numRows; i++) if (present.every((p) => p[i] === 1)) keep.push(i);
      if (keep.length === 0) continue;
      yield blockOf(table, modalities, keep);
    }
  }

  /** The rows with these ids (any order, duplicates allowed), reading only the parts that hold them. */
  async rows(ids: readonly bigint[]): Promise<Map<bigint, OutputRow>> {
    const out = new Map<bigint, OutputRow>();
    const byPart = new Map<PartRange, number[]>();
    for (const id of new Set(ids)) {
      const n = Number(id);
      const part = this.parts.find((p) => n >= p.firstId && n < p.firstId + p.rows);
      if (part === undefined) throw new InputError(`row id ${id} is not in ${this.store.description}: no part holds it`, { id: n });
      byPart.set(part, [...(byPart.get(part) ?? []), n - part.firstId]);
    }
    for (const [part, locals] of byPart) {
      const table = await this.readPart(part.key);
      const col = (name: string): { get(i: number): unknown } => table.table.getChild(name)!;
      for (const i of locals) {
        const id = BigInt(col(COLUMNS.rowIndex).get(i) as bigint);
        out.set(id, {
          id,
          caption: col(COLUMNS.text).get(i) as string | null,
          source: String(col(COLUMNS.source).get(i)),
          offset: Number(col(COLUMNS.offset).get(i)),
        });
      }
    }
    return out;
  }

  private async readPart(key: string): Promise<EmbeddingTable> {
    return readEmbeddingTable(await this.store.read(key), key);
  }
}

function blockOf(table: EmbeddingTable, modalities: readonly Modality[], keep: readonly number[]): RowsBlock {
  const d = table.dims;
  const vectors = new Map<Modality, Float32Array | Uint16Array>();
  for (const m of modalities) {
    const all = table.embeddings(m);
    let picked = all;
    if (keep.length !== table.numRows) {
      picked = all instanceof Uint16Array ? new Uint16Array(keep.length * d) : new Float32Array(keep.length * d);
      keep.forEach((r, j) => picked.set(all.subarray(r * d, (r + 1) * d), j * d));
    }
    vectors.set(m, picked);
  }
  const col = (name: string): { get(i: number): unknown } => table.table.getChild(name)!;
  const ids = col(COLUMNS.rowIndex);
  const text = col(COLUMNS.text);
  const source = col(COLUMNS.source);
  const offset = col(COLUMNS.offset);
  return {
    ids: BigInt64Array.from(keep, (r) => BigInt(ids.get(r) as bigint)),
    vectors,
    captions: keep.map((r) => text.get(r) as string | null),
    sources: keep.map((r) => String(source.get(r))),
    offsets: keep.map((r) => Number(offset.get(r))),
  };
}

/** Opens the published output a command names (a local path or `s3://`), for the retrieval commands. */
export function openPublishedOutput(uri: string, s3: S3ClientOptions | undefined): Promise<PublishedOutput> {
  const location = parseLocation(uri);
  return PublishedOutput.open(openStore(location, s3), formatLocation(location));
}
