import { SetMetadata } from '@nestjs/common';

export const API_KEY_ALLOWED = 'ally:api-key-allowed';
export const LIVE_ACCOUNT_REQUIRED = 'ally:live-account-required';

/**
 * A route an API key may call: chat (conversations, assistants, models, the
 * OpenAI-compatible completions) and reading one's profile. A key is scoped to
 * one workspace for chat; managing the account, organisations, billing and
 * data-subject rights needs a person signed in.
 */
export const ApiKeyAllowed = () => SetMetadata(API_KEY_ALLOWED, true);

/**
 * A route whose service does not itself know whether the account still exists
 * (billing, privacy): identity confirms it before the call, so an access token
 * that outlives its account's erasure (up to its 15 minutes) cannot buy a plan
 * or file requests for a subject that is gone. identity and chat check this
 * themselves.
 */
export const LiveAccountRequired = () => SetMetadata(LIVE_ACCOUNT_REQUIRED, true);
