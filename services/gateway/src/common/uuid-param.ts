import { Param, type PipeTransform } from '@nestjs/common';
import { z } from 'zod';
import { ProblemError } from '@ally/contracts';

const uuid = z.uuid();

class UuidPipe implements PipeTransform {
  constructor(private readonly name: string) {}
  transform(value: unknown) {
    if (!uuid.safeParse(value).success) {
      throw new ProblemError(400, `Invalid path parameter: ${this.name} (must be a valid id)`, { errors: [{ field: this.name, message: 'must be a valid id' }] });
    }
    // One spelling: ids stored as text (workspaces) and sent in events are lower case.
    return (value as string).toLowerCase();
  }
}

/** A path parameter that must be a UUID: anything else is a 400, not a 500 or a lookup. */
export const UuidParam = (name: string) => Param(name, new UuidPipe(name));
