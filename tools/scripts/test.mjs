#!/usr/bin/env node
// `npm test`: makes sure Postgres and NATS (JetStream) run locally, builds, runs every
// project's tests with jest, and ends with the line CI reads: `N passed, N failed`.
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureNats, ensurePostgres } from './infra.mjs';
import { build } from './build.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const resultsFile = join(root, '.tmp', 'jest-results.json');

let passed = 0;
let failed = 0;
try {
  await ensurePostgres();
  await ensureNats();
  await build();
  mkdirSync(dirname(resultsFile), { recursive: true });
  rmSync(resultsFile, { force: true });
  const code = await new Promise((resolve) => {
    const jest = spawn(
      process.execPath,
      ['--experimental-vm-modules', '--no-warnings', join(root, 'node_modules/jest/bin/jest.js'), '--json', `--outputFile=${resultsFile}`,
        // A leaked handle must fail loudly in the output, not hang CI until its time limit.
        '--forceExit', ...process.argv.slice(2)],
      { cwd: root, stdio: 'inherit', env: { ...process.env, NODE_ENV: 'test' } },
    );
    jest.on('exit', (c) => resolve(c ?? 1));
  });
  try {
    const results = JSON.parse(readFileSync(resultsFile, 'utf8'));
    passed = results.numPassedTests;
    // A suite that fails to load has no tests but is a failure all the same.
    failed = results.numFailedTests + results.numRuntimeErrorTestSuites;
  } catch {
    failed = Math.max(1, failed);
    console.error(`jest ended with code ${code} and wrote no results`);
  }
  if (code !== 0 && failed === 0) failed = 1;
} catch (err) {
  console.error(`npm test could not prepare the machine: ${err.message}`);
  failed = Math.max(1, failed);
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
