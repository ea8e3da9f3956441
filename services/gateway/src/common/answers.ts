import { ApiResponse } from '@nestjs/swagger';
import { z } from 'zod';
import type { RpcContract } from '@ally/contracts';

/** A reply's schema as OpenAPI 3.0 reads it. */
export const replyJsonSchema = (schema: z.ZodType) => z.toJSONSchema(schema, { io: 'output', target: 'openapi-3.0', unrepresentable: 'any' }) as Record<string, unknown>;

/** How a body of each media type is described where no reply schema says more. */
const bodyOf = (type: string) => (type === 'application/json' ? { type: 'object' } : type === 'application/zip' ? { type: 'string', format: 'binary' } : { type: 'string' });

/**
 * Documents a route's JSON answer in OpenAPI from the reply schema of the RPC
 * whose reply it passes on (or a schema of its own, for one it shapes itself).
 * `status`: the route's success status (201 for a POST that creates, unless `@HttpCode` says otherwise).
 * `alsoAs`: other media types the same status may come as (an event stream, a spreadsheet): one
 * response per status, since a second decorator for it would replace the first.
 */
export function Answers(reply: RpcContract<z.ZodType, unknown> | z.ZodType, status = 200, description = 'OK', alsoAs: string[] = []) {
  const schema = 'subject' in reply ? reply.replySchema : reply;
  if (!schema) throw new Error(`${(reply as RpcContract<z.ZodType, unknown>).subject} has no reply schema to document`);
  return ApiResponse({
    status,
    description,
    content: { 'application/json': { schema: replyJsonSchema(schema) }, ...Object.fromEntries(alsoAs.map((type) => [type, { schema: bodyOf(type) }])) },
  });
}

/** Documents an answer that is no reply of an RPC: a file, a stream of server-sent events. */
export const AnswersAs = (contentTypes: string[], description: string, status = 200) =>
  ApiResponse({ status, description, content: Object.fromEntries(contentTypes.map((type) => [type, { schema: bodyOf(type) }])) });
