import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';
import { loadCatalog } from './model-catalog.js';

const dir = mkdtempSync(join(tmpdir(), 'ally-catalog-'));
const dev = JSON.parse(readFileSync(new URL('../../config/models.dev.json', import.meta.url), 'utf8')) as { deployments: Record<string, unknown>[] };
const byId = (id: string) => dev.deployments.find((d) => d.id === id)!;
const env = { OPENAI_EMULATOR_URL: 'http://127.0.0.1:4010' };

function load(deployments: Record<string, unknown>[], production = false) {
  const file = join(dir, `${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, JSON.stringify({ deployments }));
  const keys = Object.fromEntries(deployments.map((d) => [d.apiKeyEnv as string, 'key']));
  return () => loadCatalog(file, { ...env, ...keys }, production);
}

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The catalog decides what counts as EU: a claim it cannot back is refused at start, before any prompt goes out. */
describe('model catalog', () => {
  it('loads the development catalog', () => {
    expect(load(dev.deployments)().map((d) => d.id)).toContain('gpt-4o-mini@azure-swedencentral');
  });

  it('refuses two deployments of one id (the second would use the first one\'s endpoint)', () => {
    const eu = byId('gpt-4o-mini@openai-eu');
    const us = { ...byId('gpt-4o@openai-us'), id: eu.id };
    expect(load([eu, us])).toThrow(/deployments\.1\.id gpt-4o-mini@openai-eu is the id of an earlier deployment/);
  });

  it.each([
    ['an Azure regional deployment outside the EU', { ...byId('gpt-4o-mini@azure-swedencentral'), region: 'eastus' }, /eastus is not an Azure region in the EU/],
    ['an Azure regional deployment in Switzerland', { ...byId('gpt-4o-mini@azure-swedencentral'), region: 'switzerlandnorth' }, /switzerlandnorth is not an Azure region in the EU/],
    ['a Data Zone EU deployment on a resource outside the EU', { ...byId('gpt-4o-mini@azure-datazone-eu'), region: 'eastus' }, /not an Azure region in the EU/],
    ['an Azure Global deployment', { ...byId('gpt-4o-mini@azure-global'), euResident: true }, /azure global deployment cannot be EU-resident/],
    ['OpenAI "self-hosted"', { ...byId('gpt-4o-mini@openai-eu'), deploymentType: 'self-hosted' }, /openai has no self-hosted deployments/],
    ['Azure "eu-residency"', { ...byId('gpt-4o-mini@azure-swedencentral'), deploymentType: 'eu-residency' }, /azure has no eu-residency deployments/],
    ['an Azure deployment as a moderation endpoint', { ...byId('gpt-4o-mini@azure-swedencentral'), moderation: true }, /Azure OpenAI offers no moderation endpoint/],
    ['a base URL that is not one', { ...byId('mistral-small@hetzner-fsn1'), baseUrl: 'https://<your-resource>.openai.azure.com' }, /baseUrl must be an http\(s\) URL/],
  ])('refuses %s', (_, deployment, message) => {
    expect(load([deployment])).toThrow(message);
  });

  it('in production, takes an eu-residency deployment only at OpenAI\'s EU host', () => {
    const eu = byId('gpt-4o-mini@openai-eu');
    expect(load([{ ...eu, baseUrl: 'https://api.openai.com/v1' }], true)).toThrow(/eu-residency but its baseUrl is not https:\/\/eu\.api\.openai\.com/);
    expect(load([{ ...eu, baseUrl: 'https://eu.api.openai.com/v1' }], true)()[0]).toMatchObject({ id: eu.id, euResident: true });
  });
});
