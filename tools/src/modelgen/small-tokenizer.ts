/** The special tokens CLIP tokenizers use; they are always the two last ids. */
export const CLIP_START_TOKEN = '<|startoftext|>';
export const CLIP_END_TOKEN = '<|endoftext|>';

/** Total vocabulary: 512 byte tokens, the learned merges, and the two special tokens. */
const VOCAB_SIZE = 4096;

/** Caption words that become single tokens, so common English captions tokenize realistically (shared by every generated tokenizer). */
export const CAPTION_WORDS = (
  'a an the of in on with and at to for from by is are photo picture image view close up man woman person people ' +
  'child children boy girl dog cat bird horse car bus train truck bicycle motorcycle street road city building house ' +
  'room kitchen table chair bed window door tree trees grass flower flowers field sky cloud clouds water sea beach ' +
  'river lake mountain mountains snow rain sun night day red blue green yellow white black brown gray orange pink ' +
  'purple small large big old young two three some group standing sitting walking running playing holding looking ' +
  'wearing riding eating next near front top side background food plate pizza cake coffee cup book phone computer ' +
  'ball game sport team player shirt hat camera light wall floor sign art painting drawing cartoon logo text ' +
  'illustration vintage style portrait landscape'
).split(' ');

/** Training weight of each caption word; the generated syllable words weigh 1. */
const CAPTION_WORD_FREQUENCY = 1000;

const CONSONANTS = [...'bcdfghjklmnprstvwz'];
const VOWELS = [...'aeiou'];

/**
 * A small CLIP-style tokenizer.json for generated models when the real CLIP tokenizer is not at
 * hand. It has the real one's structure (NFC + whitespace collapse + lowercase, CLIP's split
 * regex, byte-level BPE with a `</w>` end-of-word suffix, so any text including CJK encodes) but
 * a few thousand merges over common caption words and generated syllable words instead of 48894.
 * `<|startoftext|>` and `<|endoftext|>` are the last two ids, as in CLIP, because the text graph
 * pools at ArgMax(input_ids) and relies on end-of-text being the largest id.
 *
 * Deterministic and independent of the model seed: every generated model shares this tokenizer.
 */
export function buildSmallTokenizer(): Record<string, unknown> {
  const byteChars = byteLevelAlphabet();
  const vocab = new Map<string, number>();
  for (const symbol of [...byteChars, ...byteChars.map((c) => `${c}</w>`)]) vocab.set(symbol, vocab.size);
  const merges = learnMerges(trainingWords(), VOCAB_SIZE - vocab.size - 2);
  for (const merge of merges) {
    const merged = merge.replace(' ', '');
    if (!vocab.has(merged)) vocab.set(merged, vocab.size);
  }
  const startId = vocab.size;
  const endId = startId + 1;
  vocab.set(CLIP_START_TOKEN, startId);
  vocab.set(CLIP_END_TOKEN, endId);
  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: true, special: true });
  const templateToken = (content: string) => ({ SpecialToken: { id: content, type_id: 0 } });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(startId, CLIP_START_TOKEN), special(endId, CLIP_END_TOKEN)],
    normalizer: {
      type: 'Sequence',
      normalizers: [{ type: 'NFC' }, { type: 'Replace', pattern: { Regex: '\\s+' }, content: ' ' }, { type: 'Lowercase' }],
    },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        {
          type: 'Split',
          pattern: { Regex: "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+" },
          behavior: 'Removed',
          invert: true,
        },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: {
      type: 'TemplateProcessing',
      single: [templateToken(CLIP_START_TOKEN), { Sequence: { id: 'A', type_id: 0 } }, templateToken(CLIP_END_TOKEN)],
      pair: [templateToken(CLIP_START_TOKEN), { Sequence: { id: 'A', type_id: 0 } }, templateToken(CLIP_END_TOKEN), { Sequence: { id: 'B', type_id: 0 } }, templateToken(CLIP_END_TOKEN)],
      special_tokens: {
        [CLIP_START_TOKEN]: { id: CLIP_START_TOKEN, ids: [startId], tokens: [CLIP_START_TOKEN] },
        [CLIP_END_TOKEN]: { id: CLIP_END_TOKEN, ids: [endId], tokens: [CLIP_END_TOKEN] },
      },
    },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: CLIP_END_TOKEN,
      continuing_subword_prefix: '',
      end_of_word_suffix: '</w>',
      fuse_unk: false,
      byte_fallback: false,
      vocab: Object.fromEntries(vocab),
      merges,
    },
  };
}

/**
 * The training corpus as word -> frequency: caption words weigh far more than the generated
 * consonant-vowel-consonant-vowel words ("baba", "babe", ...) so they end up as single tokens.
 */
function trainingWords(): Map<string, number> {
  const words = new Map<string, number>();
  for (const c1 of CONSONANTS) for (const v1 of VOWELS) for (const c2 of CONSONANTS) for (const v2 of VOWELS) words.set(c1 + v1 + c2 + v2, 1);
  for (const word of CAPTION_WORDS) words.set(word, CAPTION_WORD_FREQUENCY);
  return words;
}

/**
 * Byte-pair-encoding training: repeatedly merge the most frequent adjacent symbol pair (ties by
 * pair text, for determinism). Merges must come from training rather than from spelling words
 * out, because a BPE encoder applies merges by rank across the whole word: only trained ranks
 * reproduce the intended segmentation. Pair counts are updated only for the words a merge
 * touches, and the best pair comes from a lazily corrected max-heap, which keeps a few thousand
 * merges over eight thousand words to tens of milliseconds.
 */
function learnMerges(corpus: ReadonlyMap<string, number>, budget: number): string[] {
  const words = [...corpus].map(([word, frequency]) => {
    const symbols = [...word];
    symbols.push(`${symbols.pop() ?? ''}</w>`);
    return { symbols, frequency };
  });
  const counts = new Map<string, number>();
  const wordsWithPair = new Map<string, Set<number>>();
  const grown = new Set<string>();
  const countPairs = (index: number, sign: 1 | -1): void => {
    const word = words[index];
    if (word === undefined) return;
    for (let i = 0; i + 1 < word.symbols.length; i++) {
      const pair = `${word.symbols[i]} ${word.symbols[i + 1]}`;
      counts.set(pair, (counts.get(pair) ?? 0) + sign * word.frequency);
      if (sign === 1) {
        grown.add(pair);
        const holders = wordsWithPair.get(pair) ?? new Set<number>();
        holders.add(index);
        wordsWithPair.set(pair, holders);
      }
    }
  };
  const heap = new PairHeap();
  const pushGrown = (): void => {
    for (const pair of grown) heap.push(pair, counts.get(pair) ?? 0);
    grown.clear();
  };
  words.forEach((_, index) => countPairs(index, 1));
  pushGrown();

  const merges: string[] = [];
  while (merges.length < budget) {
    const top = heap.pop();
    if (top === undefined) break;
    const current = counts.get(top.pair) ?? 0;
    // A stale entry: the count fell since it was pushed (re-queue it) or rose (a newer entry exists).
    if (current !== top.count) {
      if (current > 0 && current < top.count) heap.push(top.pair, current);
      continue;
    }
    if (current <= 0) continue;
    merges.push(top.pair);
    const [left, right] = top.pair.split(' ');
    for (const index of wordsWithPair.get(top.pair) ?? []) {
      const word = words[index];
      if (word === undefined) continue;
      countPairs(index, -1);
      const merged: string[] = [];
      for (let i = 0; i < word.symbols.length; i++) {
        if (word.symbols[i] === left && word.symbols[i + 1] === right) {
          merged.push(`${left}${right}`);
          i++;
        } else {
          merged.push(word.symbols[i] ?? '');
        }
      }
      word.symbols = merged;
      countPairs(index, 1);
    }
    wordsWithPair.delete(top.pair);
    counts.delete(top.pair);
    grown.delete(top.pair);
    pushGrown();
  }
  return merges;
}

/** A binary max-heap of (pair, count), highest count first, then the smaller pair text. */
class PairHeap {
  private readonly items: { pair: string; count: number }[] = [];

  push(pair: string, count: number): void {
    const items = this.items;
    items.push({ pair, count });
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  pop(): { pair: string; count: number } | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (top === undefined || last === undefined || items.length === 0) return top;
    items[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let best = i;
      if (l < items.length && this.before(l, best)) best = l;
      if (r < items.length && this.before(r, best)) best = r;
      if (best === i) return top;
      this.swap(i, best);
      i = best;
    }
  }

  private before(a: number, b: number): boolean {
    const x = this.items[a];
    const y = this.items[b];
    if (x === undefined || y === undefined) return false;
    return x.count > y.count || (x.count === y.count && x.pair < y.pair);
  }

  private swap(a: number, b: number): void {
    const x = this.items[a];
    const y = this.items[b];
    if (x === undefined || y === undefined) return;
    this.items[a] = y;
    this.items[b] = x;
  }
}

/**
 * GPT-2's byte-to-unicode table in CLIP's order: printable Latin-1 bytes stand for themselves,
 * the rest map to code points from 256 up, so every byte has a visible one-character token.
 */
function byteLevelAlphabet(): string[] {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const chars = printable.map((b) => String.fromCodePoint(b));
  let next = 256;
  for (let b = 0; b < 256; b++) {
    if (!printable.includes(b)) chars.push(String.fromCodePoint(next++));
  }
  return chars;
}
