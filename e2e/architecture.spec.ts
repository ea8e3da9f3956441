import { describe, expect, it } from '@jest/globals';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

const SERVICES = ['gateway', 'identity', 'chat', 'billing', 'privacy', 'notify'];

function sources(dir: string): string[] {
  let out: string[] = [];
  let entries: string[] = [];
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of entries) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out = out.concat(sources(path));
    else if (name.endsWith('.ts')) out.push(path);
  }
  return out;
}

const importsOf = (file: string) => [...readFileSync(file, 'utf8').matchAll(/from '([^']+)'/g)].map((m) => m[1]);

describe('module boundaries', () => {
  it('a service imports only libs, never another service', () => {
    for (const svc of SERVICES) {
      for (const file of sources(join('services', svc, 'src'))) {
        const foreign = importsOf(file).filter((i) => SERVICES.some((o) => o !== svc && (i === `@ally/${o}` || i.includes(`services/${o}/`))));
        expect({ file, foreign }).toEqual({ file, foreign: [] });
      }
    }
  });

  it('libs never import services', () => {
    for (const file of sources('libs')) {
      const services = importsOf(file).filter((i) => SERVICES.some((s) => i === `@ally/${s}` || i.includes('services/')));
      expect({ file, services }).toEqual({ file, services: [] });
    }
  });

  it('no schema is ever synchronised from entities', () => {
    for (const file of [...sources('libs'), ...sources('services')]) {
      expect({ file, sync: /synchronize:\s*true/.test(readFileSync(file, 'utf8')) }).toEqual({ file, sync: false });
    }
  });
});
