import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Tokenizer } from '@huggingface/tokenizers';
import { installTokenizerShortcuts } from '@vecmill/worker/model/tokenizer-shortcuts';
import { ClipTokenizer } from '@vecmill/worker/model/clip-tokenizer';
import { fixturesSkipReason, sharedFixturesDir } from '../support/fixtures.js';

function realTokenizer(): ClipTokenizer {
  const json = JSON.parse(readFileSync(join(sharedFixturesDir() as string, 'clip-tokenizer', 'tokenizer.json'), 'utf8')) as unknown;
  return new ClipTokenizer(json, {}, { contextLength: 77 });
}

describe('ClipTokenizer with the real CLIP tokenizer.json', { skip: fixturesSkipReason() }, () => {
  it('matches OpenAI token ids for known captions', () => {
    const tok = realTokenizer();
    assert.deepEqual(tok.encode('a photo of a cat'), [49406, 320, 1125, 539, 320, 2368, 49407]);
    assert.deepEqual(tok.encode('A Photo Of A DOG!!'), [49406, 320, 1125, 539, 320, 1929, 748, 49407]);
    assert.deepEqual(tok.encode(''), [49406, 49407]);
  });

  it('gives the library tokenizer its shortcuts, and the same ids as without it', () => {
    const json = JSON.parse(readFileSync(join(sharedFixturesDir() as string, 'clip-tokenizer', 'tokenizer.json'), 'utf8')) as object;
    const library = new Tokenizer(json, {});
    const shortcut = new Tokenizer(json, {});
    assert.equal(installTokenizerShortcuts(shortcut), 5);
    const captions = [
      'a photo of a cat',
      'A Photo Of A DOG!! (2024) -- $5.99 @home #tag ~x~ {braces} [brackets] back\\slash',
      "it's the cat's toy, isn't it? we'll see; they'd say: \"yes\"",
      'café — 日本語 🐱 naïve façade',
      'tabs\tand\nnewlines\r\n  many   spaces  ',
      'e\u0301 combining, \u00a0no-break space, zero\u200bwidth',
      'lone \ud800 surrogate',
      '<|startoftext|>inside<|endoftext|> tokens',
      '',
      '   ',
      '12345678901234567890',
      'x'.repeat(300),
    ];
    // Enough distinct words to fill the word cache (10,000) and turn it over, each seen twice.
    let seed = 7;
    const random = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const word = (): string => Array.from({ length: 3 + Math.floor(random() * 8) }, () => 'abcdefghijklmnopqrstuvwxyzé,.!'[Math.floor(random() * 30)]).join('');
    const generated = Array.from({ length: 3000 }, () => Array.from({ length: 8 }, word).join(' '));
    for (const caption of [...captions, ...generated, ...generated]) assert.deepEqual(shortcut.encode(caption).ids, library.encode(caption).ids, caption);
    const tok = realTokenizer();
    for (const caption of captions) {
      const ids = library.encode(caption).ids;
      if (ids.length <= 77) assert.deepEqual(tok.encode(caption), ids, caption);
    }
  });

  it('truncates a long caption to 77 tokens with the end token last', () => {
    const tok = realTokenizer();
    const ids = tok.encode('word '.repeat(500));
    assert.equal(ids.length, 77);
    assert.equal(ids[0], 49406);
    assert.equal(ids[76], 49407);
    assert.equal(ids.filter((t) => t === 49407).length, 1);
  });

  it('pads a batch to its longest caption, or to a fixed length, with the end token', () => {
    const tok = realTokenizer();
    const trimmed = tok.encodeBatch(['a photo of a cat', 'a cat'], undefined);
    assert.equal(trimmed.seqLen, 7);
    assert.deepEqual(trimmed.lengths, [7, 4]);
    assert.deepEqual([...trimmed.ids.slice(7)].map(Number), [49406, 320, 2368, 49407, 49407, 49407, 49407]);
    const full = tok.encodeBatch(['a cat'], 77);
    assert.equal(full.ids.length, 77);
    assert.equal(Number(full.ids[76]), 49407);
  });

  it('keeps a caption of exactly 77 tokens intact and cuts 78 to 77', () => {
    const tok = realTokenizer();
    const exact = tok.encode('cat '.repeat(75));
    assert.equal(exact.length, 77);
    assert.equal(exact[75], 2368);
    const over = tok.encode('cat '.repeat(76));
    assert.equal(over.length, 77);
    assert.equal(over[75], 2368);
    assert.equal(over[76], 49407);
  });
});

describe('ClipTokenizer errors', () => {
  it('refuses a tokenizer without <|endoftext|>', () => {
    const json = {
      version: '1.0',
      added_tokens: [],
      normalizer: null,
      pre_tokenizer: { type: 'Whitespace' },
      post_processor: null,
      decoder: null,
      model: { type: 'WordLevel', vocab: { a: 0, '[UNK]': 1 }, unk_token: '[UNK]' },
    };
    assert.throws(() => new ClipTokenizer(json, {}, { contextLength: 77 }), { code: 'E_MODEL', message: /<\|endoftext\|>/ });
  });

  it('refuses a tokenizer.json that is not an object', () => {
    assert.throws(() => new ClipTokenizer(null, {}, { contextLength: 77 }), { code: 'E_MODEL' });
  });
});
