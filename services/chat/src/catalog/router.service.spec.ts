import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { loadCatalog } from './model-catalog.js';
import { RouterService } from './router.service.js';
import type { RoutingPolicy } from '../policy/policy.service.js';

const dev = JSON.parse(readFileSync(new URL('../../config/models.dev.json', import.meta.url), 'utf8')) as { deployments: Record<string, unknown>[] };
const anywhere: RoutingPolicy = { workspace: 'private', restrictToEu: false, orgEuOnly: false, allowedModels: null, blockedTerms: [], euOnly: false };

describe('the models a policy allows', () => {
  it("say whether their deployment counts as EU now: not while it is reported outside the EU", () => {
    // One model served by one Azure deployment in Sweden Central.
    const sweden = dev.deployments.find((d) => d.id === 'gpt-4o-mini@azure-swedencentral')!;
    const dir = mkdtempSync(join(tmpdir(), 'ally-router-'));
    try {
      const file = join(dir, 'catalog.json');
      writeFileSync(file, JSON.stringify({ deployments: [{ ...sweden, id: 'solo@azure-swedencentral', model: 'solo' }] }));
      const router = new RouterService(loadCatalog(file, { OPENAI_EMULATOR_URL: 'http://127.0.0.1:4010', [sweden.apiKeyEnv as string]: 'key' }, false));
      expect(router.models(anywhere)).toEqual([{ model: 'solo', region: 'swedencentral', euResident: true }]);
      router.quarantineOutsideEu('solo@azure-swedencentral');
      expect(router.models(anywhere)).toEqual([{ model: 'solo', region: 'swedencentral', euResident: false }]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
