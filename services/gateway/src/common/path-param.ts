import { Param, type PipeTransform } from '@nestjs/common';
import { z } from 'zod';
import { ProblemError } from '@ally/contracts';

/** A path parameter checked by its schema: anything else is a 400 naming it, not a 500 or a lookup. */
class PathPipe implements PipeTransform {
  constructor(
    private readonly name: string,
    private readonly schema: z.ZodType<string>,
  ) {}

  transform(value: unknown) {
    const result = this.schema.safeParse(value);
    if (result.success) return result.data;
    const message = result.error.issues[0]?.message ?? 'is not valid';
    throw new ProblemError(400, `Invalid path parameter: ${this.name} (${message})`, { errors: [{ field: this.name, message }] });
  }
}

/** One spelling: ids stored as text (workspaces) and sent in events are lower case. */
const uuid = z.uuid('must be a valid id').toLowerCase();

export const PathParam = (name: string, schema: z.ZodType<string>) => Param(name, new PathPipe(name, schema));

/** A path parameter that must be a UUID. */
export const UuidParam = (name: string) => PathParam(name, uuid);
