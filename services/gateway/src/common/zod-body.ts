import { applyDecorators, Body, type PipeTransform } from '@nestjs/common';
import { ApiBody } from '@nestjs/swagger';
import { z } from 'zod';
import { ProblemError, type FieldError } from '@ally/contracts';

const valueAt = (root: unknown, path: PropertyKey[]): unknown =>
  path.reduce<unknown>((v, key) => (v !== null && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[key] : undefined), root);

/**
 * One entry per bad field, in the caller's terms: a missing field "is required"
 * (not "expected string, received undefined"), and each unknown field is named
 * as the field, not as "(body)".
 */
function bodyErrors(error: z.ZodError, body: unknown): FieldError[] {
  const name = (path: PropertyKey[]) => (path.length ? path.map(String).join('.') : '(body)');
  return error.issues.flatMap((issue): FieldError[] => {
    if (issue.code === 'unrecognized_keys') return issue.keys.map((key) => ({ field: name([...issue.path, key]), message: 'is not a known field' }));
    const missing = issue.path.length > 0 && (issue.code === 'invalid_type' || issue.code === 'invalid_union' || issue.code === 'invalid_value') && valueAt(body, issue.path) === undefined;
    return [{ field: name(issue.path), message: missing ? 'is required' : issue.message }];
  });
}

class ZodPipe<S extends z.ZodType> implements PipeTransform {
  constructor(private readonly schema: S) {}
  transform(value: unknown) {
    const body = value ?? {};
    const result = this.schema.safeParse(body);
    if (result.success) return result.data;
    const errors = bodyErrors(result.error, body);
    throw new ProblemError(400, `Invalid request body: ${errors.map((e) => `${e.field} (${e.message})`).join('; ')}`, { errors });
  }
}

/** A body parameter validated by a contract schema: bad input is a 400 listing every bad field. */
export const ValidBody = <S extends z.ZodType>(schema: S) => Body(new ZodPipe(schema));

/** Documents the body in OpenAPI from the same schema that validates it. */
export const BodySchema = (schema: z.ZodType) =>
  applyDecorators(ApiBody({ schema: z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as any }));
