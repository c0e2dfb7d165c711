import type { Tokenizer } from '@huggingface/tokenizers';

/** What a ByteLevel pre-tokenizer of @huggingface/tokenizers holds (not in its public types). */
interface ByteLevelLike {
  pre_tokenize_text(text: string, options?: unknown): string[];
  readonly byte_encoder: Readonly<Record<number, string>>;
  readonly text_encoder: unknown;
  readonly use_regex: boolean;
  readonly add_prefix_space: boolean;
}

/** A pre-tokenizer node: ByteLevel, or a Sequence holding others. */
interface PreTokenizerNode {
  readonly tokenizers?: readonly unknown[];
}

function isByteLevel(node: unknown): node is ByteLevelLike {
  const n = node as Partial<ByteLevelLike> | null;
  return typeof n?.pre_tokenize_text === 'function' && typeof n.byte_encoder === 'object' && n.byte_encoder !== null && typeof n.text_encoder === 'object';
}

/** True when every character is printable ASCII ('!' to '~'), which ByteLevel maps to itself. */
function printableAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

/**
 * Gives the tokenizer's ByteLevel pre-tokenizers a shortcut for the common piece: the library
 * maps every piece byte by byte (a TextEncoder call, an array and a join per word), which was
 * about half of CLIP's tokenizing time on captions. A piece of printable ASCII, with no regex
 * split and no prefix space to add, comes back as itself: its UTF-8 bytes are its character
 * codes and the byte-to-unicode table maps each of them to the same character (checked here,
 * with the library's own method on a probe, before the shortcut is installed). Every other
 * piece goes through the library's method, so the ids are the library's for every caption.
 * Returns how many pre-tokenizers got the shortcut.
 */
export function installByteLevelShortcut(tokenizer: Tokenizer): number {
  let installed = 0;
  const visit = (node: unknown): void => {
    for (const inner of (node as PreTokenizerNode | null)?.tokenizers ?? []) visit(inner);
    if (!isByteLevel(node)) return;
    for (let b = 0x21; b <= 0x7e; b++) if (node.byte_encoder[b] !== String.fromCharCode(b)) return;
    if (node.use_regex || node.add_prefix_space) return;
    const original = node.pre_tokenize_text;
    const probe = '!09AZaz~';
    if (JSON.stringify(original.call(node, probe)) !== JSON.stringify([probe])) return;
    node.pre_tokenize_text = function (this: ByteLevelLike, text: string, options?: unknown): string[] {
      return printableAscii(text) ? [text] : original.call(this, text, options);
    };
    installed++;
  };
  visit((tokenizer as unknown as { pre_tokenizer?: unknown }).pre_tokenizer);
  return installed;
}
