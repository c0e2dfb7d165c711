import type { Tokenizer } from '@huggingface/tokenizers';

/** What a pre-tokenizer of @huggingface/tokenizers holds (not in its public types). */
interface PreTokenizerLike {
  pre_tokenize(text: string | readonly string[], options?: unknown): string[];
  pre_tokenize_text(text: string, options?: unknown): string[];
  /** A Sequence's members. */
  readonly tokenizers?: readonly unknown[];
}

/** What a ByteLevel pre-tokenizer holds besides. */
interface ByteLevelLike extends PreTokenizerLike {
  readonly byte_encoder: Readonly<Record<number, string>>;
  readonly text_encoder: unknown;
  readonly use_regex: boolean;
  readonly add_prefix_space: boolean;
}

/** The BPE model's word cache: its results never change, only how long they are kept. */
interface WordCache {
  get(key: string): string[] | undefined;
  put(key: string, value: string[]): void;
  clear(): void;
}

function isPreTokenizer(node: unknown): node is PreTokenizerLike {
  const n = node as Partial<PreTokenizerLike> | null;
  return typeof n?.pre_tokenize === 'function' && typeof n.pre_tokenize_text === 'function';
}

function isByteLevel(node: PreTokenizerLike): node is ByteLevelLike {
  const n = node as Partial<ByteLevelLike>;
  return typeof n.byte_encoder === 'object' && n.byte_encoder !== null && typeof n.text_encoder === 'object';
}

/** True when every character is printable ASCII ('!' to '~'), which ByteLevel maps to itself. */
function printableAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

/** The library's `pre_tokenize` (each piece through `pre_tokenize_text`, then `flat()`), with a loop for `flat()`. */
function preTokenizeByLoop(this: PreTokenizerLike, text: string | readonly string[], options?: unknown): string[] {
  const out: string[] = [];
  if (typeof text === 'string') {
    for (const piece of this.pre_tokenize_text(text, options) as unknown[]) {
      if (Array.isArray(piece)) for (const p of piece) out.push(p as string);
      else out.push(piece as string);
    }
    return out;
  }
  for (const t of text) {
    const pieces = this.pre_tokenize_text(t, options) as unknown;
    if (Array.isArray(pieces)) for (const p of pieces) out.push(p as string);
    else out.push(pieces as string);
  }
  return out;
}

/** Probes each way of pre-tokenizing must answer alike before the loop replaces `flat()`. */
const probes: readonly (string | readonly string[])[] = ['a photo, of 2 cats!', ['ab', 'c d', ''], [], '', 'café 日本'];

/**
 * A word cache with the same bound as the library's LRU but two plain maps (the newer one is
 * filled; when it is full it becomes the older one): a hit costs one or two lookups instead of
 * the LRU's four map operations per word. It holds at most twice the capacity.
 */
class TwoGenerationCache implements WordCache {
  private young = new Map<string, string[]>();
  private old = new Map<string, string[]>();

  constructor(private readonly capacity: number) {}

  get(key: string): string[] | undefined {
    const hit = this.young.get(key);
    if (hit !== undefined) return hit;
    const older = this.old.get(key);
    if (older !== undefined) this.put(key, older);
    return older;
  }

  put(key: string, value: string[]): void {
    if (this.young.size >= this.capacity) {
      this.old = this.young;
      this.young = new Map();
    }
    this.young.set(key, value);
  }

  clear(): void {
    this.young.clear();
    this.old.clear();
  }
}

/**
 * Takes the slowest generic steps out of the library's tokenizing where a cheaper step gives the
 * same ids, which made CLIP's tokenizer about twice as fast on captions:
 * - ByteLevel maps every piece byte by byte (a TextEncoder call, an array and a join per word).
 *   A piece of printable ASCII, with no regex split and no prefix space to add, comes back as
 *   itself: its UTF-8 bytes are its character codes and the byte-to-unicode table maps each of
 *   them to the same character (checked here, and the library's own method is probed, before the
 *   shortcut is installed). Every other piece goes through the library's method.
 * - Each pre-tokenizer flattens its pieces with `Array.prototype.flat`, much slower than a loop
 *   over the same arrays; the loop is installed only where it answers the probes as the
 *   library's method does.
 * - The BPE model's word cache is an LRU that moves every hit to the end (four map operations);
 *   a cached word's pieces never change, so a cache that evicts differently, with the same bound
 *   on memory, changes no ids.
 * Returns how many replacements were installed.
 */
export function installTokenizerShortcuts(tokenizer: Tokenizer): number {
  let installed = 0;
  const visit = (node: unknown): void => {
    if (!isPreTokenizer(node)) return;
    for (const inner of node.tokenizers ?? []) visit(inner);
    if (isByteLevel(node) && !node.use_regex && !node.add_prefix_space) {
      let identity = true;
      for (let b = 0x21; b <= 0x7e; b++) if (node.byte_encoder[b] !== String.fromCharCode(b)) identity = false;
      const original = node.pre_tokenize_text;
      const probe = '!09AZaz~';
      if (identity && JSON.stringify(original.call(node, probe)) === JSON.stringify([probe])) {
        node.pre_tokenize_text = function (this: ByteLevelLike, text: string, options?: unknown): string[] {
          return printableAscii(text) ? [text] : original.call(this, text, options);
        };
        installed++;
      }
    }
    const library = node.pre_tokenize;
    if (probes.every((p) => JSON.stringify(library.call(node, p)) === JSON.stringify(preTokenizeByLoop.call(node, p)))) {
      node.pre_tokenize = preTokenizeByLoop;
      installed++;
    }
  };
  const t = tokenizer as unknown as { pre_tokenizer?: unknown; model?: { cache?: Partial<WordCache>; cache_capacity?: unknown } };
  visit(t.pre_tokenizer);
  const model = t.model;
  if (model !== undefined && typeof model.cache?.get === 'function' && typeof model.cache.put === 'function' && typeof model.cache_capacity === 'number') {
    model.cache = new TwoGenerationCache(model.cache_capacity);
    installed++;
  }
  return installed;
}
