import { CAPTION_WORDS } from './small-tokenizer.js';

/** SigLIP's special tokens: `<pad>` 0, `</s>` 1 (end of sequence and, as SigLIP pads, the pad token), `<unk>` 2. */
export const SIGLIP_PAD_PIECE = '<pad>';
export const SIGLIP_EOS_TOKEN = '</s>';
export const SIGLIP_UNK_TOKEN = '<unk>';

/** SentencePiece's word-start marker. */
const WORD_START = '\u2581';

const CONSONANTS = [...'bcdfghjklmnprstvwz'];
const VOWELS = [...'aeiou'];

/**
 * A small SigLIP-style SentencePiece (Unigram) tokenizer.json for generated SigLIP models, since
 * no SentencePiece model can be downloaded here: lowercasing and whitespace collapsing, Metaspace
 * pre-tokenization (`▁` marks a word start), a Unigram model whose pieces are the caption words
 * as whole words, consonant-vowel syllables and single characters (log-probability scores favour
 * longer pieces, so Viterbi segmentation prefers them), and `$A </s>` post-processing as
 * SiglipTokenizer adds its end token. Characters with no piece become `<unk>`.
 *
 * Deterministic and independent of the model seed.
 */
export function buildSmallUnigramTokenizer(): Record<string, unknown> {
  const pieces: [string, number][] = [
    [SIGLIP_PAD_PIECE, 0],
    [SIGLIP_EOS_TOKEN, 0],
    [SIGLIP_UNK_TOKEN, 0],
  ];
  const seen = new Set(pieces.map(([p]) => p));
  const add = (piece: string, score: number): void => {
    if (seen.has(piece)) return;
    seen.add(piece);
    pieces.push([piece, score]);
  };
  add(WORD_START, -6);
  for (const word of CAPTION_WORDS) add(`${WORD_START}${word}`, -8 - word.length * 0.01);
  for (const c of CONSONANTS) for (const v of VOWELS) {
    add(`${WORD_START}${c}${v}`, -9);
    add(`${c}${v}`, -9.5);
  }
  for (let c = 0x21; c <= 0x7e; c++) add(String.fromCharCode(c).toLowerCase(), -12);
  const special = (content: string) => ({ id: pieces.findIndex(([p]) => p === content), content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [SIGLIP_PAD_PIECE, SIGLIP_EOS_TOKEN, SIGLIP_UNK_TOKEN].map(special),
    normalizer: {
      type: 'Sequence',
      normalizers: [{ type: 'Lowercase' }, { type: 'Replace', pattern: { Regex: '\\s+' }, content: ' ' }, { type: 'Strip', strip_left: true, strip_right: true }],
    },
    pre_tokenizer: { type: 'Metaspace', replacement: WORD_START, prepend_scheme: 'always', split: true },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: SIGLIP_EOS_TOKEN, type_id: 0 } }],
      pair: [{ Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: SIGLIP_EOS_TOKEN, type_id: 0 } }, { Sequence: { id: 'B', type_id: 0 } }, { SpecialToken: { id: SIGLIP_EOS_TOKEN, type_id: 0 } }],
      special_tokens: { [SIGLIP_EOS_TOKEN]: { id: SIGLIP_EOS_TOKEN, ids: [1], tokens: [SIGLIP_EOS_TOKEN] } },
    },
    decoder: { type: 'Metaspace', replacement: WORD_START, prepend_scheme: 'always', split: true },
    model: { type: 'Unigram', unk_id: 2, vocab: pieces, byte_fallback: false },
  };
}
