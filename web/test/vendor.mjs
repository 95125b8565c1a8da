// vendor.mjs copies the app's libraries from node_modules (npm ci, pinned
// by package-lock.json) into app/vendor/, or checks that the copies there
// are what it would write. The copies are the packages' own ES module
// builds with one change: bare imports ("preact", "preact/hooks",
// "@preact/signals-core") become relative ones ("./preact.mjs"), since a
// page without a build step (and without an inline import map, which the
// CSP forbids) cannot resolve bare names; the source map comment is
// dropped. app/vendor/VENDOR.json records each file's package, version and
// the SHA-256 of the npm file and of the copy; web_test.go checks the copies
// and versions against it and package-lock.json without node.
//
//	node test/vendor.mjs          # check (exit 1 on a difference)
//	node test/vendor.mjs --write  # after changing a version in package.json and npm install

import { readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';

const web = new URL('../', import.meta.url);
const files = [
  // [package, file in the package, name in app/vendor]
  ['preact', 'dist/preact.mjs', 'preact.mjs'],
  ['preact', 'hooks/dist/hooks.mjs', 'hooks.mjs'],
  ['htm', 'dist/htm.mjs', 'htm.mjs'],
  ['@preact/signals-core', 'dist/signals-core.mjs', 'signals-core.mjs'],
  ['@preact/signals', 'dist/signals.mjs', 'signals.mjs'],
];
const specifiers = {
  preact: './preact.mjs',
  'preact/hooks': './hooks.mjs',
  '@preact/signals-core': './signals-core.mjs',
};

const sha256 = (b) => createHash('sha256').update(b).digest('hex');

export function rewrite(src) {
  let out = src.replace(/(from\s*|import\s*)(["'])([^"']+)\2/g, (all, kw, q, spec) => {
    if (!(spec in specifiers)) {
      if (!spec.startsWith('.')) throw new Error(`vendor: an import of ${spec} that has no copy`);
      return all;
    }
    return `${kw}${q}${specifiers[spec]}${q}`;
  });
  out = out.replace(/\n?\/\/# sourceMappingURL=\S+\s*$/, '\n');
  return out;
}

const lock = JSON.parse(readFileSync(new URL('package-lock.json', web), 'utf8'));
const manifest = { note: 'written by test/vendor.mjs --write; do not edit', files: {} };
let bad = 0;
for (const [pkg, from, name] of files) {
  const locked = lock.packages[`node_modules/${pkg}`]?.version;
  const installed = JSON.parse(readFileSync(new URL(`node_modules/${pkg}/package.json`, web), 'utf8')).version;
  if (!locked || locked !== installed) {
    console.error(`vendor: ${pkg}: node_modules has ${installed}, package-lock.json pins ${locked} (run npm ci)`);
    bad++;
    continue;
  }
  const src = readFileSync(new URL(`node_modules/${pkg}/${from}`, web), 'utf8');
  const copy = rewrite(src);
  manifest.files[name] = { package: pkg, version: locked, from, npm_sha256: sha256(src), sha256: sha256(copy) };
  const dst = new URL(`app/vendor/${name}`, web);
  if (process.argv.includes('--write')) {
    writeFileSync(dst, copy);
    continue;
  }
  let have = null;
  try {
    have = readFileSync(dst, 'utf8');
  } catch {}
  if (have !== copy) {
    console.error(`vendor: app/vendor/${name} is not ${pkg}@${locked}/${from} (node test/vendor.mjs --write)`);
    bad++;
  }
}
const mpath = new URL('app/vendor/VENDOR.json', web);
const text = JSON.stringify(manifest, null, 2) + '\n';
if (process.argv.includes('--write')) {
  writeFileSync(mpath, text);
} else if (readFileSync(mpath, 'utf8') !== text) {
  console.error('vendor: app/vendor/VENDOR.json is stale (node test/vendor.mjs --write)');
  bad++;
}
if (bad) process.exit(1);
console.log(`vendor: ${files.length} files match package-lock.json`);
