import { applyDecorators, Body, type PipeTransform } from '@nestjs/common';
import { ApiBody } from '@nestjs/swagger';
import { z } from 'zod';
import { fieldErrors, invalidInput } from '@ally/contracts';

class ZodPipe<S extends z.ZodType> implements PipeTransform {
  constructor(private readonly schema: S) {}
  transform(value: unknown) {
    const body = value ?? {};
    const result = this.schema.safeParse(body);
    if (result.success) return result.data;
    throw invalidInput(fieldErrors(result.error, body));
  }
}

/** A body parameter validated by a contract schema: bad input is a 400 listing every bad field. */
export const ValidBody = <S extends z.ZodType>(schema: S) => Body(new ZodPipe(schema));

/** Documents the body in OpenAPI from the same schema that validates it. */
export const BodySchema = (schema: z.ZodType) =>
  applyDecorators(ApiBody({ schema: z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as any }));
