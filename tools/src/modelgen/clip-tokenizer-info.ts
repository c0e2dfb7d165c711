import { ModelError } from '@vecmill/shared/errors';
import { CLIP_END_TOKEN, CLIP_START_TOKEN } from './small-tokenizer.js';

/** What config.json and the text graph need to know about a tokenizer. */
export interface ClipTokenizerInfo {
  /** One more than the largest id: the token embedding's row count. */
  readonly vocabSize: number;
  readonly bosTokenId: number;
  readonly eosTokenId: number;
  /** CLIP pads with its end-of-text token. */
  readonly padTokenId: number;
}

/**
 * Reads the special ids of a CLIP tokenizer.json and checks it suits the generated text graph,
 * which pools at ArgMax(input_ids): that finds the end-of-text token only if it is the largest id.
 * `source` names the file in error messages.
 */
export function describeClipTokenizer(tokenizer: unknown, source: string): ClipTokenizerInfo {
  const ids = new Map<string, number>();
  if (typeof tokenizer === 'object' && tokenizer !== null) {
    const { model, added_tokens: addedTokens } = tokenizer as { model?: { vocab?: unknown }; added_tokens?: unknown };
    const vocab = model?.vocab;
    if (typeof vocab === 'object' && vocab !== null && !Array.isArray(vocab)) {
      for (const [token, id] of Object.entries(vocab)) if (typeof id === 'number') ids.set(token, id);
    }
    if (Array.isArray(addedTokens)) {
      for (const added of addedTokens as { content?: unknown; id?: unknown }[]) {
        if (typeof added.content === 'string' && typeof added.id === 'number') ids.set(added.content, added.id);
      }
    }
  }
  if (ids.size === 0) {
    throw new ModelError(`tokenizer ${source} has no vocabulary: pass a Hugging Face tokenizer.json of a CLIP model`, { file: source });
  }
  const bos = ids.get(CLIP_START_TOKEN);
  const eos = ids.get(CLIP_END_TOKEN);
  if (bos === undefined || eos === undefined) {
    throw new ModelError(`tokenizer ${source} lacks ${CLIP_START_TOKEN} or ${CLIP_END_TOKEN}: pass the tokenizer.json of a CLIP model`, { file: source });
  }
  let vocabSize = 0;
  for (const id of ids.values()) vocabSize = Math.max(vocabSize, id + 1);
  if (eos !== vocabSize - 1) {
    throw new ModelError(`tokenizer ${source} gives ${CLIP_END_TOKEN} id ${eos}, not the largest id ${vocabSize - 1}, so end-of-text pooling cannot find it: pass a CLIP tokenizer.json`, {
      file: source,
    });
  }
  return { vocabSize, bosTokenId: bos, eosTokenId: eos, padTokenId: eos };
}
