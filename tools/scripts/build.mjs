#!/usr/bin/env node
// Compiles every workspace package's src/ to dist/ with swc (type checking is `npm run typecheck`).
import { transformFile } from '@swc/core';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const swcrc = JSON.parse(await readFile(join(root, '.swcrc'), 'utf8'));
delete swcrc.$schema;

async function* walk(dir) {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* walk(path);
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.spec.ts') && !entry.name.endsWith('.d.ts')) yield path;
  }
}

/** Builds the given package folders (e.g. `services/identity`), or all of them. */
export async function build(only = []) {
  const packages = [];
  for (const group of ['libs', 'services']) {
    for (const name of await readdir(join(root, group))) packages.push(join(root, group, name));
  }
  packages.push(join(root, 'tools', 'emulators'));
  if (only.length) packages.splice(0, packages.length, ...only.map((p) => join(root, p)));
  let files = 0;
  await Promise.all(
    packages.map(async (pkg) => {
      const src = join(pkg, 'src');
      const dist = join(pkg, 'dist');
      await rm(dist, { recursive: true, force: true });
      try {
        await readdir(src);
      } catch {
        return;
      }
      for await (const file of walk(src)) {
        const out = join(dist, relative(src, file)).replace(/\.ts$/, '.js');
        const { code, map } = await transformFile(file, { ...swcrc, swcrc: false, filename: file, sourceFileName: relative(dirname(out), file) });
        await mkdir(dirname(out), { recursive: true });
        await writeFile(out, `${code}\n//# sourceMappingURL=${out.split('/').pop()}.map\n`);
        if (map) await writeFile(`${out}.map`, map);
        files++;
      }
    }),
  );
  return files;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const started = Date.now();
  const files = await build(process.argv.slice(2));
  console.log(`built ${files} files in ${Date.now() - started} ms`);
}
