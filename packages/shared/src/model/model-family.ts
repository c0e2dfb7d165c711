import { ModelError } from '../errors.js';

/** The dual-encoder model families vecmill embeds with, named by config.json's `model_type`. */
export type ModelFamily = 'clip' | 'chinese_clip' | 'siglip';

/** Every known family, in the order error messages list them. */
export const MODEL_FAMILIES: readonly ModelFamily[] = ['clip', 'chinese_clip', 'siglip'];

/**
 * What differs between families on the text side, as Hugging Face's model and tokenizer classes
 * define it. Everything else (special tokens, pad id, truncation length) is read from the model
 * folder's files; these are only the semantics and the class defaults those files rely on.
 */
export interface FamilyTraits {
  /**
   * When padding may be trimmed to the batch's longest caption without changing any embedding:
   * `always` for CLIP (causal tower pooled at the end token); `with-mask` for Chinese-CLIP
   * (bidirectional encoder pooled at `[CLS]`: exact only when the graph takes the attention
   * mask); `never` for SigLIP, which was trained on captions padded to `max_length`, pools the
   * last position and attends to padding.
   */
  readonly trimming: 'always' | 'with-mask' | 'never';
  /** Whether the attention mask covers padding too: SigLIP's text tower was trained without masking. */
  readonly attendsToPadding: boolean;
  /** The text config's `max_position_embeddings` default (CLIPTextConfig 77, ChineseCLIPTextConfig 512, SiglipTextConfig 64). */
  readonly defaultMaxPositions: number;
  /** The tokenizer class's default pad token (CLIPTokenizer, BertTokenizer, SiglipTokenizer), used when no tokenizer file names one. */
  readonly defaultPadToken: string;
  /** The Hugging Face tokenizer the family's folders carry, for error messages. */
  readonly tokenizerName: string;
}

const traits: Readonly<Record<ModelFamily, FamilyTraits>> = {
  clip: { trimming: 'always', attendsToPadding: false, defaultMaxPositions: 77, defaultPadToken: '<|endoftext|>', tokenizerName: 'CLIP byte-level BPE' },
  chinese_clip: { trimming: 'with-mask', attendsToPadding: false, defaultMaxPositions: 512, defaultPadToken: '[PAD]', tokenizerName: 'BERT WordPiece' },
  siglip: { trimming: 'never', attendsToPadding: true, defaultMaxPositions: 64, defaultPadToken: '</s>', tokenizerName: 'SigLIP SentencePiece (Unigram)' },
};

/** The traits of a family. */
export function familyTraits(family: ModelFamily): FamilyTraits {
  return traits[family];
}

/**
 * The family of a config.json `model_type`. A missing `model_type` means CLIP, since older CLIP
 * exports omit it; any other value fails in one line naming the families vecmill knows.
 */
export function parseModelFamily(modelType: unknown, where: string): ModelFamily {
  if (modelType === undefined || modelType === null) return 'clip';
  if (typeof modelType === 'string' && (MODEL_FAMILIES as readonly string[]).includes(modelType)) return modelType as ModelFamily;
  throw new ModelError(
    `config.json in ${where} has model_type ${JSON.stringify(modelType)}, which vecmill cannot embed with; it knows ${MODEL_FAMILIES.join(', ')} (pass a model folder of one of those families)`,
    { model: where, field: 'model_type' },
  );
}
