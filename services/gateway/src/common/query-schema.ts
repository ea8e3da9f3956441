import { applyDecorators } from '@nestjs/common';
import { ApiQuery } from '@nestjs/swagger';
import { z } from 'zod';

interface JsonSchemaObject {
  properties?: Record<string, Record<string, unknown>>;
  required?: string[];
}

/**
 * Documents a route's query parameters in OpenAPI from the contract schema
 * that parses them (`parseInput(schema, query, 'query')`), so the document
 * names what the server takes and requires. `omit`: keys that come from the
 * path; `describe`: words for a parameter the schema does not explain.
 */
export const QuerySchema = (schema: z.ZodObject, opts: { omit?: string[]; describe?: Record<string, string> } = {}) => {
  const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as JsonSchemaObject;
  const params = Object.entries(json.properties ?? {}).filter(([name]) => !opts.omit?.includes(name));
  return applyDecorators(
    ...params.map(([name, property]) =>
      ApiQuery({
        name,
        required: json.required?.includes(name) ?? false,
        schema: property,
        ...(opts.describe?.[name] ? { description: opts.describe[name] } : name === 'cursor' ? { description: 'nextCursor of the previous page' } : {}),
      }),
    ),
  );
};
