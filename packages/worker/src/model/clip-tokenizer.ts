import { Tokenizer } from '@huggingface/tokenizers';
import { ModelError } from '@vecmill/shared/errors';
import { familyTraits, type ModelFamily } from '@vecmill/shared/model/model-family';
import { installTokenizerShortcuts } from './tokenizer-shortcuts.js';
import { TokenLayout, type TokenLayoutOptions } from './token-layout.js';

/**
 * Captions longer than this many UTF-16 units are cut before tokenizing: no family keeps more than
 * a few hundred tokens, so a megabyte caption would only burn CPU. 8192 units hold far more than
 * any context of any real text.
 */
const maxCaptionChars = 8192;

/** Options for turning captions into the text tower's inputs. */
export interface ClipTokenizerOptions {
  /** Tokens per caption, special tokens included (the run's truncation length, e.g. 77 for CLIP, 52 for Chinese-CLIP, 64 for SigLIP). */
  readonly contextLength: number;
  /** The model family (config.json `model_type`); default `clip`. */
  readonly family?: ModelFamily;
}

/** A batch of token ids laid out as the text graph wants them: row-major `[batch, seqLen]`. */
export interface TokenBatch {
  readonly ids: BigInt64Array;
  readonly batch: number;
  readonly seqLen: number;
  /**
   * Positions per row the attention mask covers (if the graph takes one): the caption's tokens,
   * special tokens included, or the whole row for a family trained to attend to padding (SigLIP).
   */
  readonly lengths: readonly number[];
}

/** The special tokens the tokenizer's post-processor puts around a caption. */
interface SpecialFrame {
  readonly prefix: readonly number[];
  readonly suffix: readonly number[];
}

/**
 * Tokenization of a CLIP-style dual encoder over its model folder's `tokenizer.json` and
 * `tokenizer_config.json`, with the family's Hugging Face semantics: the special tokens the
 * tokenizer's post-processor adds (`<|startoftext|> … <|endoftext|>` for CLIP, `[CLS] … [SEP]`
 * for Chinese-CLIP's BERT WordPiece, `… </s>` for SigLIP), truncation that keeps them (so the end
 * token or `[SEP]` stays last, as `truncation=True` does), and padding with the pad token the
 * files name (CLIP pads with its end token; BERT with `[PAD]`; SigLIP with `</s>`).
 */
export class ClipTokenizer extends TokenLayout {
  readonly family: ModelFamily;
  /** The last special token of a caption (CLIP's end-of-text, BERT's `[SEP]`, SigLIP's `</s>`), or undefined when none is added. */
  readonly endTokenId: number | undefined;
  private readonly frame: SpecialFrame;
  private readonly tokenizer: Tokenizer;

  constructor(tokenizerJson: unknown, tokenizerConfig: Readonly<Record<string, unknown>>, options: ClipTokenizerOptions) {
    const loaded = loadTokenizer(tokenizerJson, tokenizerConfig, options);
    super(loaded.layout);
    this.family = loaded.family;
    this.endTokenId = loaded.frame.suffix[loaded.frame.suffix.length - 1];
    this.frame = loaded.frame;
    this.tokenizer = loaded.tokenizer;
  }

  /** Token ids of one caption, truncated to the context length with the special tokens kept at both ends. */
  encode(text: string): number[] {
    const clipped = text.length > maxCaptionChars ? text.slice(0, maxCaptionChars) : text;
    const ids = this.tokenizer.encode(clipped).ids;
    if (ids.length <= this.contextLength) return ids;
    const { prefix, suffix } = this.frame;
    const body = ids.slice(prefix.length, prefix.length + this.contextLength - prefix.length - suffix.length);
    return [...prefix, ...body, ...suffix];
  }

  /**
   * Encodes a batch padded to `padTo` tokens, or to the batch's longest caption when `padTo` is
   * undefined (only where `padLength` allows it; several times cheaper on short captions).
   */
  encodeBatch(texts: readonly string[], padTo: number | undefined): TokenBatch {
    return this.packBatch(texts.map((t) => this.encode(t)), padTo);
  }
}

/** A tokenizer built from a model folder's files and checked, with what `TokenLayout` needs. */
interface LoadedTokenizer {
  readonly family: ModelFamily;
  readonly tokenizer: Tokenizer;
  readonly frame: SpecialFrame;
  readonly layout: TokenLayoutOptions;
}

/** Builds the Hugging Face tokenizer and checks that vecmill can place its special tokens and pad token. */
function loadTokenizer(tokenizerJson: unknown, tokenizerConfig: Readonly<Record<string, unknown>>, options: ClipTokenizerOptions): LoadedTokenizer {
  if (typeof tokenizerJson !== 'object' || tokenizerJson === null) {
    throw new ModelError('tokenizer.json is not a JSON object; the model folder needs a Hugging Face tokenizer.json');
  }
  const family = options.family ?? 'clip';
  const traits = familyTraits(family);
  let tokenizer: Tokenizer;
  try {
    tokenizer = new Tokenizer(tokenizerJson, tokenizerConfig);
  } catch (err) {
    throw new ModelError(`tokenizer.json cannot be loaded: ${(err as Error).message}`, {}, { cause: err });
  }
  installTokenizerShortcuts(tokenizer);
  if (family === 'clip' && tokenizer.token_to_id('<|endoftext|>') === undefined) {
    throw new ModelError('tokenizer.json has no <|endoftext|> token; it is not a CLIP tokenizer (for another family, set config.json model_type)');
  }
  const frame = specialFrame(tokenizerJson as Record<string, unknown>, (token) => tokenizer.token_to_id(token));
  const bare = tokenizer.encode('').ids;
  if (bare.join(',') !== [...frame.prefix, ...frame.suffix].join(',')) {
    throw new ModelError(`tokenizer.json's post_processor adds special tokens vecmill cannot place (an empty caption gives ${bare.join(' ')}); pass the ${traits.tokenizerName} tokenizer.json of the model`);
  }
  const padToken = padTokenName(tokenizerJson as Record<string, unknown>, tokenizerConfig) ?? traits.defaultPadToken;
  const pad = tokenizer.token_to_id(padToken);
  if (pad === undefined) {
    throw new ModelError(`tokenizer.json has no pad token ${padToken}; pass the ${traits.tokenizerName} tokenizer.json of a ${family} model, with tokenizer_config.json naming its pad_token`);
  }
  const reserved = frame.prefix.length + frame.suffix.length;
  if (!Number.isInteger(options.contextLength) || options.contextLength <= reserved) {
    throw new ModelError(`context length ${options.contextLength} leaves no room for a caption between ${reserved} special tokens; pass a larger --context-length`);
  }
  return {
    family,
    tokenizer,
    frame,
    layout: { contextLength: options.contextLength, padTokenId: pad, trimming: traits.trimming, attendsToPadding: traits.attendsToPadding },
  };
}

/**
 * The special tokens a `post_processor` puts before and after a single caption: TemplateProcessing's
 * `single` template, Bert/RobertaProcessing's `cls`/`sep`, or the first of a Sequence that adds any.
 */
function specialFrame(json: Readonly<Record<string, unknown>>, idOf: (token: string) => number | undefined): SpecialFrame {
  const none: SpecialFrame = { prefix: [], suffix: [] };
  const read = (pp: unknown): SpecialFrame | undefined => {
    if (typeof pp !== 'object' || pp === null) return undefined;
    const p = pp as Record<string, unknown>;
    if (p['type'] === 'Sequence' && Array.isArray(p['processors'])) {
      for (const inner of p['processors']) {
        const frame = read(inner);
        if (frame !== undefined) return frame;
      }
      return undefined;
    }
    if (p['type'] === 'BertProcessing' || p['type'] === 'RobertaProcessing') {
      const idOfPair = (v: unknown): number[] => (Array.isArray(v) && typeof v[1] === 'number' ? [v[1]] : []);
      return { prefix: idOfPair(p['cls']), suffix: idOfPair(p['sep']) };
    }
    if (p['type'] === 'TemplateProcessing' && Array.isArray(p['single'])) {
      const specials = (p['special_tokens'] ?? {}) as Record<string, { ids?: unknown }>;
      const prefix: number[] = [];
      const suffix: number[] = [];
      let seen = false;
      for (const piece of p['single'] as Record<string, { id?: unknown }>[]) {
        if (piece['Sequence'] !== undefined) {
          seen = true;
          continue;
        }
        const name = piece['SpecialToken']?.id;
        if (typeof name !== 'string') continue;
        const listed = specials[name]?.ids;
        const ids = Array.isArray(listed) ? listed.filter((x): x is number => typeof x === 'number') : [idOf(name)].filter((x): x is number => x !== undefined);
        (seen ? suffix : prefix).push(...ids);
      }
      return { prefix, suffix };
    }
    return undefined;
  };
  return read(json['post_processor']) ?? none;
}

/** The pad token the folder names: tokenizer_config.json's `pad_token` (a string or an AddedToken object), else tokenizer.json's `padding.pad_token`. */
function padTokenName(json: Readonly<Record<string, unknown>>, config: Readonly<Record<string, unknown>>): string | undefined {
  const fromConfig = config['pad_token'];
  if (typeof fromConfig === 'string') return fromConfig;
  if (typeof fromConfig === 'object' && fromConfig !== null && typeof (fromConfig as { content?: unknown }).content === 'string') {
    return (fromConfig as { content: string }).content;
  }
  const padding = json['padding'];
  if (typeof padding === 'object' && padding !== null && typeof (padding as { pad_token?: unknown }).pad_token === 'string') {
    return (padding as { pad_token: string }).pad_token;
  }
  return undefined;
}
