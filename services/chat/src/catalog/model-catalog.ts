import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { StartupError } from '@ally/platform';
import { isEuRegion } from './eu-regions.js';

/**
 * Azure deployment types that keep processing in the EU: a regional
 * deployment in an EU region and a Data Zone EU deployment. "Global" may
 * process anywhere and never counts as EU.
 */
const EU_AZURE_TYPES = new Set(['regional', 'datazone-eu']);

/** What each provider offers: OpenAI has no regional or self-hosted deployments, Azure no EU residency endpoint. */
const TYPES_BY_PROVIDER: Record<string, string[]> = {
  azure: ['regional', 'datazone-eu', 'global'],
  openai: ['eu-residency', 'standard'],
  'openai-compatible': ['self-hosted', 'standard'],
};

/** OpenAI's European data-residency endpoint: an eu-residency deployment anywhere else is not one. */
const OPENAI_EU_HOST = 'eu.api.openai.com';

export const deploymentSchema = z
  .object({
    id: z.string().regex(/^[a-z0-9._@-]+$/),
    /** The model users ask for; deployments of one model are each other's fallback. */
    model: z.string().min(1),
    provider: z.enum(['openai', 'azure', 'openai-compatible']),
    /** Azure deployment name, or the provider's model name (defaults to `model`). */
    deployment: z.string().optional(),
    deploymentType: z.enum(['regional', 'datazone-eu', 'global', 'eu-residency', 'standard', 'self-hosted']),
    region: z.string().min(2),
    euResident: z.boolean(),
    baseUrl: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }),
    apiVersion: z.string().optional(),
    /** The environment variable holding this endpoint's key. */
    apiKeyEnv: z.string().regex(/^[A-Z0-9_]+$/),
    contextWindow: z.number().int().positive().default(128_000),
    priority: z.number().int().default(100),
    pricePer1kTokens: z.object({ prompt: z.number().min(0), completion: z.number().min(0) }),
    /** A moderation endpoint (OpenAI-compatible /moderations) used for prompts sent here. */
    moderation: z.boolean().default(false),
    /**
     * The provider moderates every prompt itself, in this deployment's region,
     * before the model sees it, and refuses a flagged one (Azure OpenAI's content
     * filtering with blocking on). Such a deployment needs no separate moderation
     * call, which would hand the prompt to a second endpoint for the same check.
     * Said per deployment: an Azure filter set to annotate only does not count.
     */
    promptFilter: z.boolean().default(false),
  })
  .superRefine((d, ctx) => {
    if (!TYPES_BY_PROVIDER[d.provider].includes(d.deploymentType)) {
      ctx.addIssue({ code: 'custom', path: ['deploymentType'], message: `${d.id}: ${d.provider} has no ${d.deploymentType} deployments (one of ${TYPES_BY_PROVIDER[d.provider].join(', ')})` });
    }
    // A deployment may only claim EU residency where its type guarantees it, and an Azure one only in an EU region.
    const euByType = d.provider === 'azure' ? EU_AZURE_TYPES.has(d.deploymentType) : ['eu-residency', 'self-hosted'].includes(d.deploymentType);
    if (d.euResident && !euByType) ctx.addIssue({ code: 'custom', path: ['euResident'], message: `${d.id}: a ${d.provider} ${d.deploymentType} deployment cannot be EU-resident` });
    if (d.euResident && d.provider === 'azure' && !isEuRegion(d.region)) {
      ctx.addIssue({ code: 'custom', path: ['region'], message: `${d.id}: ${d.region} is not an Azure region in the EU, so the deployment cannot be EU-resident` });
    }
    if (d.provider === 'azure' && !d.apiVersion) ctx.addIssue({ code: 'custom', path: ['apiVersion'], message: `${d.id}: Azure needs apiVersion` });
    // Azure OpenAI has no /moderations endpoint (its content filter is `promptFilter`): such a moderator would fail every prompt it is asked about.
    if (d.provider === 'azure' && d.moderation) ctx.addIssue({ code: 'custom', path: ['moderation'], message: `${d.id}: Azure OpenAI offers no moderation endpoint; use promptFilter for its content filter` });
  });

export type Deployment = z.infer<typeof deploymentSchema> & { apiKey: string };

const catalogSchema = z.object({
  deployments: z
    .array(deploymentSchema)
    .min(1)
    .superRefine((ds, ctx) => {
      // Clients and the receipt go by id: two entries of one id would share the first one's endpoint.
      const seen = new Set<string>();
      ds.forEach((d, i) => {
        if (seen.has(d.id)) ctx.addIssue({ code: 'custom', path: [i, 'id'], message: `${d.id} is the id of an earlier deployment; each needs its own` });
        seen.add(d.id);
      });
    }),
});

/**
 * Reads the catalog; `${VAR}` in base URLs is replaced from the environment
 * (the emulator's address in development). Production refuses a deployment
 * whose key is missing.
 */
export function loadCatalog(file: string, env: Record<string, string | undefined>, production: boolean): Deployment[] {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8').replace(/\$\{([A-Z0-9_]+)\}/g, (_, name) => env[name] ?? ''));
  } catch (err) {
    throw new StartupError(`Configuration error: MODEL_CATALOG_FILE ${file} cannot be read (${(err as Error).message})`);
  }
  const parsed = catalogSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new StartupError(`Configuration error: MODEL_CATALOG_FILE ${issue.path.join('.')} ${issue.message}`);
  }
  return parsed.data.deployments.map((d) => {
    // In development an emulator stands in for the endpoint; in production only OpenAI's own EU host is the EU.
    if (production && d.deploymentType === 'eu-residency' && new URL(d.baseUrl).hostname !== OPENAI_EU_HOST) {
      throw new StartupError(`Configuration error: MODEL_CATALOG_FILE deployment ${d.id} is eu-residency but its baseUrl is not https://${OPENAI_EU_HOST}/…`);
    }
    const apiKey = env[d.apiKeyEnv];
    if (!apiKey && production) throw new StartupError(`Configuration error: ${d.apiKeyEnv} is missing (key of deployment ${d.id}); production refuses to start without provider credentials`);
    return { ...d, apiKey: apiKey ?? 'emulator' };
  });
}
