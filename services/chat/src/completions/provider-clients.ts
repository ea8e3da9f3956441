import { Inject, Injectable } from '@nestjs/common';
import OpenAI, { AzureOpenAI, type ClientOptions } from 'openai';
import { Agent, fetch } from 'undici';

// undici's types and the DOM-style ones the SDK declares differ only on paper.
const undiciFetch = fetch as unknown as ClientOptions['fetch'];
import { CHAT_CONFIG, type ChatConfig } from '../config.js';
import type { Deployment } from '../catalog/model-catalog.js';

/**
 * One SDK client per deployment: `OpenAI` for OpenAI and OpenAI-compatible
 * endpoints, `AzureOpenAI` for Azure. Retries are ours (fallback to another
 * allowed deployment), so the SDK's are off. They share one undici Agent, as
 * the SDK documents: its timeouts follow ours instead of Node's built-in five
 * minutes, and undici's own fetch is faster than the one bundled with Node 20.
 */
@Injectable()
export class ProviderClients {
  private readonly clients = new Map<string, OpenAI>();
  private readonly dispatcher: Agent;

  constructor(@Inject(CHAT_CONFIG) private readonly config: ChatConfig) {
    this.dispatcher = new Agent({ headersTimeout: config.PROVIDER_TIMEOUT_MS, bodyTimeout: config.PROVIDER_TIMEOUT_MS });
  }

  for(d: Deployment): OpenAI {
    let client = this.clients.get(d.id);
    if (!client) {
      const common = { apiKey: d.apiKey, maxRetries: 0, timeout: this.config.PROVIDER_TIMEOUT_MS, fetch: undiciFetch, fetchOptions: { dispatcher: this.dispatcher } as ClientOptions['fetchOptions'] };
      client =
        d.provider === 'azure'
          ? new AzureOpenAI({ ...common, endpoint: d.baseUrl, apiVersion: d.apiVersion, deployment: d.deployment ?? d.model })
          : new OpenAI({ ...common, baseURL: d.baseUrl });
      this.clients.set(d.id, client);
    }
    return client;
  }
}

/** Errors worth trying another deployment for: rate limits, server errors, timeouts, network. */
export function isFallbackWorthy(err: unknown): boolean {
  if (err instanceof OpenAI.APIConnectionError) return true; // includes timeouts
  if (err instanceof OpenAI.APIError) return err.status === 429 || (err.status ?? 0) >= 500 || err.status === 408;
  return false;
}

/** The call was cancelled: the client went away or stopped acknowledging the stream. */
export function isAbort(err: unknown): boolean {
  const name = (err as Error)?.name;
  return err instanceof OpenAI.APIUserAbortError || name === 'AbortError' || name === 'StreamAbandoned';
}

/** The provider's own prompt filter refused the prompt (Azure OpenAI: 400 with code `content_filter`). */
export function isPromptFiltered(err: unknown): boolean {
  return err instanceof OpenAI.BadRequestError && err.code === 'content_filter';
}
