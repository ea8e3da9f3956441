import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { StartupError } from '@ally/platform';

/**
 * Azure deployment types that keep processing in the EU: a regional
 * deployment in an EU region and a Data Zone EU deployment. "Global" may
 * process anywhere and never counts as EU.
 */
const EU_AZURE_TYPES = new Set(['regional', 'datazone-eu']);

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
    baseUrl: z.string().min(1),
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
    // A deployment may only claim EU residency where its type guarantees it.
    const euByType = d.provider === 'azure' ? EU_AZURE_TYPES.has(d.deploymentType) : ['eu-residency', 'self-hosted'].includes(d.deploymentType);
    if (d.euResident && !euByType) ctx.addIssue({ code: 'custom', path: ['euResident'], message: `${d.id}: a ${d.provider} ${d.deploymentType} deployment cannot be EU-resident` });
    if (d.provider === 'azure' && !d.apiVersion) ctx.addIssue({ code: 'custom', path: ['apiVersion'], message: `${d.id}: Azure needs apiVersion` });
  });

export type Deployment = z.infer<typeof deploymentSchema> & { apiKey: string };

const catalogSchema = z.object({ deployments: z.array(deploymentSchema).min(1) });

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
    const apiKey = env[d.apiKeyEnv];
    if (!apiKey && production) throw new StartupError(`Configuration error: ${d.apiKeyEnv} is missing (key of deployment ${d.id}); production refuses to start without provider credentials`);
    return { ...d, apiKey: apiKey ?? 'emulator' };
  });
}
