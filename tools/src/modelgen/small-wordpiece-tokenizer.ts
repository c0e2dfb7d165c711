import { CAPTION_WORDS } from './small-tokenizer.js';

/** BERT's special tokens, in the order Chinese BERT vocabularies start with them. */
export const BERT_PAD_TOKEN = '[PAD]';
export const BERT_UNK_TOKEN = '[UNK]';
export const BERT_CLS_TOKEN = '[CLS]';
export const BERT_SEP_TOKEN = '[SEP]';
export const BERT_MASK_TOKEN = '[MASK]';

/** The CJK Unified Ideographs block that Chinese BERT vocabularies cover, U+4E00 to U+9FA5: every hanzi of a caption gets its own token. */
const CJK_FIRST = 0x4e00;
const CJK_LAST = 0x9fa5;

/**
 * A small Chinese-BERT-style WordPiece tokenizer.json for generated Chinese-CLIP models: the real
 * one's structure (BertNormalizer with Chinese-character splitting and lowercasing,
 * BertPreTokenizer, WordPiece with `##` continuations, `[CLS] $A [SEP]`) over its own
 * vocabulary: the special tokens, printable ASCII with its `##` forms, common English caption words
 * and the CJK Unified Ideographs (about 21,000 tokens, as in Chinese BERT). `[PAD]` is 0, as in Chinese BERT vocabularies.
 *
 * Deterministic and independent of the model seed.
 */
export function buildSmallWordPieceTokenizer(): Record<string, unknown> {
  const vocab = new Map<string, number>();
  const add = (token: string): void => {
    if (!vocab.has(token)) vocab.set(token, vocab.size);
  };
  for (const special of [BERT_PAD_TOKEN, BERT_UNK_TOKEN, BERT_CLS_TOKEN, BERT_SEP_TOKEN, BERT_MASK_TOKEN]) add(special);
  const ascii: string[] = [];
  for (let c = 0x21; c <= 0x7e; c++) ascii.push(String.fromCharCode(c));
  for (const ch of ascii) add(ch);
  for (const ch of ascii) add(`##${ch}`);
  for (const word of CAPTION_WORDS) add(word);
  for (let c = CJK_FIRST; c <= CJK_LAST; c++) add(String.fromCodePoint(c));
  const ids = (token: string): number => vocab.get(token) as number;
  const special = (content: string) => ({ id: ids(content), content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [BERT_PAD_TOKEN, BERT_UNK_TOKEN, BERT_CLS_TOKEN, BERT_SEP_TOKEN, BERT_MASK_TOKEN].map(special),
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: BERT_CLS_TOKEN, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: BERT_SEP_TOKEN, type_id: 0 } }],
      pair: [
        { SpecialToken: { id: BERT_CLS_TOKEN, type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: BERT_SEP_TOKEN, type_id: 0 } },
        { Sequence: { id: 'B', type_id: 1 } },
        { SpecialToken: { id: BERT_SEP_TOKEN, type_id: 1 } },
      ],
      special_tokens: {
        [BERT_CLS_TOKEN]: { id: BERT_CLS_TOKEN, ids: [ids(BERT_CLS_TOKEN)], tokens: [BERT_CLS_TOKEN] },
        [BERT_SEP_TOKEN]: { id: BERT_SEP_TOKEN, ids: [ids(BERT_SEP_TOKEN)], tokens: [BERT_SEP_TOKEN] },
      },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: BERT_UNK_TOKEN, continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab: Object.fromEntries(vocab) },
  };
}
