import assert from 'node:assert/strict';
import { builtinModules } from 'node:module';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { projectRoot } from '../support/fixtures.js';

/**
 * The dependency rule between packages, written down in the README's architecture section:
 * a package imports only packages of a lower layer, never a sibling or a higher one, so the
 * graph has no cycles; and every bare import is declared in the importing package's own
 * package.json, so each package (and each production image) says what it needs.
 */
const layers: Readonly<Record<string, number>> = {
  '@vecmill/shared': 0,
  '@vecmill/producer': 1,
  '@vecmill/worker': 1,
  '@vecmill/retrieval': 2,
  vecmill: 3,
  '@vecmill/tools': 4,
};

interface Pkg {
  readonly dir: string;
  readonly name: string;
  readonly dependencies: Readonly<Record<string, string>>;
  readonly exports: unknown;
}

function packages(): Pkg[] {
  const root = join(projectRoot, 'packages');
  const dirs = [...readdirSync(root).map((d) => join(root, d)), join(projectRoot, 'tools')];
  return dirs
    .filter((d) => existsSync(join(d, 'package.json')))
    .map((d) => {
      const json = JSON.parse(readFileSync(join(d, 'package.json'), 'utf8')) as { name: string; dependencies?: Record<string, string>; devDependencies?: Record<string, string>; exports?: unknown };
      // tools/ is development code: it declares devDependencies, which production installs leave out.
      return { dir: d, name: json.name, dependencies: { ...json.dependencies, ...json.devDependencies }, exports: json.exports };
    });
}

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/**
 * Static `from '…'`, side-effect `import '…'`, dynamic `import('…')` and `require.resolve('…')`
 * (a package's bundled files, such as a .wasm) specifiers of a file.
 */
export function importSpecifiers(code: string): string[] {
  const found: string[] = [];
  const patterns = [/\bfrom\s+'([^']+)'/g, /^\s*import\s+'([^']+)'/gm, /\bimport\(\s*'([^']+)'\s*\)/g, /\.resolve\(\s*'([^']+)'\s*\)/g];
  for (const re of patterns) for (const m of code.matchAll(re)) found.push(m[1] as string);
  return found;
}

/** The package a bare specifier names: `@scope/name/sub` → `@scope/name`, `name/sub` → `name`. */
function packageOf(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? `${parts[0]}/${parts[1]}` : (parts[0] as string);
}

const builtins = new Set(builtinModules);

describe('package boundaries', () => {
  const pkgs = packages();

  it('finds every workspace package and gives each a layer', () => {
    assert.deepEqual(pkgs.map((p) => p.name).sort(), Object.keys(layers).sort());
  });

  it('parses the four import forms (so the rule below cannot pass by finding nothing)', () => {
    const code = "import { a } from 'x/y';\nimport 'side-effect';\nconst m = await import('@s/p/q');\nimport type { T } from './local.js';\nrequire.resolve('@w/asm/x.wasm');";
    assert.deepEqual(importSpecifiers(code).sort(), ['./local.js', '@s/p/q', '@w/asm/x.wasm', 'side-effect', 'x/y']);
  });

  for (const pkg of pkgs) {
    it(`${pkg.name}: imports only declared dependencies, and only packages of a lower layer`, () => {
      const files = sources(join(pkg.dir, 'src'));
      assert.ok(files.length > 0, `${pkg.name} has sources`);
      const problems: string[] = [];
      for (const file of files) {
        for (const spec of importSpecifiers(readFileSync(file, 'utf8'))) {
          if (spec.startsWith('.') || spec.startsWith('node:') || builtins.has(spec)) continue;
          const dep = packageOf(spec);
          const where = relative(projectRoot, file);
          if (dep === pkg.name) problems.push(`${where} imports its own package by name (${spec}); use a relative path`);
          if (!(dep in pkg.dependencies)) problems.push(`${where} imports ${dep}, which ${pkg.name}'s package.json does not declare`);
          const from = layers[pkg.name];
          const to = layers[dep];
          if (from !== undefined && to !== undefined && dep !== pkg.name && to >= from) {
            problems.push(`${where} imports ${dep} (layer ${to}) from ${pkg.name} (layer ${from}): only lower layers may be imported`);
          }
        }
      }
      assert.deepEqual(problems, []);
    });

    it(`${pkg.name}: every declared dependency is used, and its exports resolve to built files`, async () => {
      const used = new Set<string>();
      for (const file of sources(join(pkg.dir, 'src'))) {
        for (const spec of importSpecifiers(readFileSync(file, 'utf8'))) if (!spec.startsWith('.') && !spec.startsWith('node:')) used.add(packageOf(spec));
      }
      assert.deepEqual(Object.keys(pkg.dependencies).filter((d) => !used.has(d)), [], `${pkg.name} declares dependencies it never imports`);
      for (const file of sources(join(pkg.dir, 'src'))) {
        const sub = relative(join(pkg.dir, 'src'), file).replace(/\.ts$/, '');
        const resolved = new URL(import.meta.resolve(`${pkg.name}/${sub}`)).pathname;
        assert.ok(existsSync(resolved), `${pkg.name}/${sub} resolves to ${resolved}, which does not exist`);
      }
    });
  }
});
