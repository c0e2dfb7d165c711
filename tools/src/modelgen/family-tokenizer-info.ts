import { ModelError } from '@vecmill/shared/errors';
import type { ModelFamily } from '@vecmill/shared/model/model-family';
import { BERT_CLS_TOKEN, BERT_PAD_TOKEN, BERT_SEP_TOKEN } from './small-wordpiece-tokenizer.js';
import { SIGLIP_EOS_TOKEN } from './small-unigram-tokenizer.js';

/** What config.json and a Chinese-CLIP or SigLIP text graph need to know about a tokenizer. */
export interface FamilyTokenizerInfo {
  /** One more than the largest id: the token embedding's row count. */
  readonly vocabSize: number;
  /** Ids of the tokens the family's config.json names, by token. */
  readonly ids: ReadonlyMap<string, number>;
}

/** The tokens each family's tokenizer must have (BERT's `[CLS]`/`[SEP]`/`[PAD]`; SigLIP's `</s>`). */
const requiredTokens: Readonly<Record<Exclude<ModelFamily, 'clip'>, readonly string[]>> = {
  chinese_clip: [BERT_CLS_TOKEN, BERT_SEP_TOKEN, BERT_PAD_TOKEN],
  siglip: [SIGLIP_EOS_TOKEN],
};

/**
 * Reads the vocabulary size and special ids of a WordPiece (Chinese-CLIP) or Unigram (SigLIP)
 * tokenizer.json, refusing one that lacks the family's special tokens. `source` names the file in
 * error messages.
 */
export function describeFamilyTokenizer(tokenizer: unknown, family: Exclude<ModelFamily, 'clip'>, source: string): FamilyTokenizerInfo {
  const ids = new Map<string, number>();
  if (typeof tokenizer === 'object' && tokenizer !== null) {
    const { model, added_tokens: addedTokens } = tokenizer as { model?: { vocab?: unknown }; added_tokens?: unknown };
    const vocab = model?.vocab;
    if (Array.isArray(vocab)) {
      vocab.forEach((piece: unknown, id) => {
        if (Array.isArray(piece) && typeof piece[0] === 'string') ids.set(piece[0], id);
      });
    } else if (typeof vocab === 'object' && vocab !== null) {
      for (const [token, id] of Object.entries(vocab)) if (typeof id === 'number') ids.set(token, id);
    }
    if (Array.isArray(addedTokens)) {
      for (const added of addedTokens as { content?: unknown; id?: unknown }[]) {
        if (typeof added.content === 'string' && typeof added.id === 'number') ids.set(added.content, added.id);
      }
    }
  }
  const missing = requiredTokens[family].filter((t) => !ids.has(t));
  if (ids.size === 0 || missing.length > 0) {
    throw new ModelError(`tokenizer ${source} lacks ${missing.join(', ') || 'a vocabulary'}: pass the tokenizer.json of a ${family} model`, { file: source });
  }
  let vocabSize = 0;
  for (const id of ids.values()) vocabSize = Math.max(vocabSize, id + 1);
  return { vocabSize, ids };
}
