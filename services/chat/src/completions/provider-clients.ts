import { Inject, Injectable } from '@nestjs/common';
import OpenAI, { AzureOpenAI } from 'openai';
import type { ContentFilterResultDetailsForPromptOutput } from '@azure/openai/types';
import { Agent } from 'undici';
import { CHAT_CONFIG, type ChatConfig } from '../config.js';
import type { Deployment } from '../catalog/model-catalog.js';
import { providerFetch } from './provider-fetch.js';

/**
 * One SDK client per deployment: `OpenAI` for OpenAI and OpenAI-compatible
 * endpoints, `AzureOpenAI` for Azure. Retries are ours (fallback to another
 * allowed deployment), so the SDK's are off. They share one undici Agent,
 * whose timeouts follow ours instead of Node's built-in five minutes, through
 * `providerFetch`.
 */
@Injectable()
export class ProviderClients {
  private readonly clients = new Map<string, OpenAI>();
  private readonly fetch: ReturnType<typeof providerFetch>;

  constructor(@Inject(CHAT_CONFIG) private readonly config: ChatConfig) {
    this.fetch = providerFetch(new Agent({ headersTimeout: config.PROVIDER_TIMEOUT_MS, bodyTimeout: config.PROVIDER_TIMEOUT_MS }));
  }

  for(d: Deployment): OpenAI {
    let client = this.clients.get(d.id);
    if (!client) {
      const common = { apiKey: d.apiKey, maxRetries: 0, timeout: this.config.PROVIDER_TIMEOUT_MS, fetch: this.fetch };
      client =
        d.provider === 'azure'
          ? new AzureOpenAI({ ...common, endpoint: d.baseUrl, apiVersion: d.apiVersion, deployment: d.deployment ?? d.model })
          : new OpenAI({ ...common, baseURL: d.baseUrl });
      this.clients.set(d.id, client);
    }
    return client;
  }
}

/**
 * A deployment configured as EU-resident said it served the call outside the
 * EU (Azure's `x-ms-region`): a misconfigured deployment, or a provider
 * breaking its promise. For a caller restricted to the EU its answer is not
 * used, and another allowed deployment is tried.
 */
export class ServedOutsideEu extends Error {
  constructor(
    readonly deployment: string,
    readonly reportedRegion: string,
  ) {
    super(`${deployment} reported serving from ${reportedRegion}, outside the EU`);
    this.name = 'ServedOutsideEu';
  }
}

/**
 * An error the provider sent inside a stream it had accepted (OpenAI's "The server had an error while processing
 * your request" after its 200): the provider failed, not the request, which it took.
 */
export class ProviderStreamError extends OpenAI.APIError<undefined, Headers> {
  constructor(error: unknown, headers: Headers) {
    super(undefined, error as object, undefined, headers);
    this.name = 'ProviderStreamError';
  }
}

/** Errors worth trying another deployment for: rate limits, server errors (also one sent in the stream), timeouts, network, a deployment that left the EU. */
export function isFallbackWorthy(err: unknown): boolean {
  if (err instanceof OpenAI.APIConnectionError || err instanceof ServedOutsideEu || err instanceof ProviderStreamError) return true; // includes timeouts
  // 401/403/404: this deployment's key, network rule or name is wrong (an operator's slip), not the request: another allowed one may serve it.
  if (err instanceof OpenAI.APIError) return [401, 403, 404, 408, 429].includes(err.status ?? 0) || (err.status ?? 0) >= 500;
  return false;
}

/** The call was cancelled: the client went away or stopped acknowledging the stream. */
export function isAbort(err: unknown): boolean {
  const name = (err as Error)?.name;
  return err instanceof OpenAI.APIUserAbortError || name === 'AbortError' || name === 'StreamAbandoned';
}

/** The provider's own prompt filter refused the prompt (Azure OpenAI: 400 with code `content_filter`). */
export function isPromptFiltered(err: unknown): err is InstanceType<typeof OpenAI.BadRequestError> {
  return err instanceof OpenAI.BadRequestError && err.code === 'content_filter';
}

/** The categories Azure's prompt filter flagged (hate, violence, jailbreak, …): names for the log, never content. */
export function filteredCategories(err: InstanceType<typeof OpenAI.BadRequestError>): string[] {
  const details = (err.error as { innererror?: { content_filter_result?: ContentFilterResultDetailsForPromptOutput } } | undefined)?.innererror?.content_filter_result;
  return Object.entries(details ?? {})
    .filter(([, result]) => (result as { filtered?: boolean } | undefined)?.filtered)
    .map(([category]) => category);
}
