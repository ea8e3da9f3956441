#!/usr/bin/env node
// Renders the per-service NATS users from tools/deploy/nats-permissions.ts into
// k8s/base/nats/authorization.conf (used by k8s and docker-compose).
//
//   node tools/deploy/generate.mjs           # writes the file
//   node tools/deploy/generate.mjs --check   # exits 1 if the file is stale
//
// e2e/nats-permissions.spec.ts fails when the committed file differs from what
// this renders, and proves the permissions against a real nats-server.
import { transformFile } from '@swc/core';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
export const AUTHORIZATION_FILE = join(root, 'k8s/base/nats/authorization.conf');

async function load() {
  const src = join(root, 'tools/deploy/nats-permissions.ts');
  const { code } = await transformFile(src, { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' }, module: { type: 'es6' }, swcrc: false });
  const dir = await mkdtemp(join(tmpdir(), 'ally-deploy-'));
  try {
    const file = join(dir, 'nats-permissions.mjs');
    await writeFile(file, code);
    return await import(pathToFileURL(file).href);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// Anything but no argument or `--check` (a typo, `--help`) says how to call it instead of writing the file.
const args = process.argv.slice(2);
if (args.length > 1 || (args.length === 1 && args[0] !== '--check')) {
  console.error('usage: node tools/deploy/generate.mjs [--check]   (writes k8s/base/nats/authorization.conf; --check only compares)');
  process.exit(2);
}

const { renderAuthorization } = await load();
const rendered = renderAuthorization();
if (args[0] === '--check') {
  const current = await readFile(AUTHORIZATION_FILE, 'utf8').catch(() => '');
  if (current !== rendered) {
    console.error(`${AUTHORIZATION_FILE} is stale: run \`node tools/deploy/generate.mjs\``);
    process.exit(1);
  }
  console.log('k8s/base/nats/authorization.conf is up to date');
} else {
  await writeFile(AUTHORIZATION_FILE, rendered);
  console.log('wrote k8s/base/nats/authorization.conf');
}
