import { describe, expect, it } from '@jest/globals';
import { inferSchema } from './json-schema.js';

describe(inferSchema.name, () => {
  it('describes arrays of rows by merging them: optional fields are not required, mixed types become anyOf', () => {
    const sut = inferSchema([
      { id: 'a', n: 1, at: '2026-01-01T10:00:00.000Z', tag: null },
      { id: 'b', n: 2.5, tag: 'x' },
    ]);
    expect(sut).toEqual({
      type: 'array',
      items: {
        type: 'object',
        properties: {
          id: { type: 'string' },
          n: { anyOf: [{ type: 'integer' }, { type: 'number' }] },
          at: { type: 'string', format: 'date-time' },
          tag: { anyOf: [{ type: 'null' }, { type: 'string' }] },
        },
        required: ['id', 'n', 'tag'],
      },
    });
  });

  it('describes every item of a long list, not the first ones only', () => {
    const conversations = Array.from({ length: 450 }, (_, i) => ({ id: `c${i}`, assistantId: i === 449 ? 'a1' : null }));
    expect(inferSchema(conversations)).toEqual({
      type: 'array',
      items: {
        type: 'object',
        properties: { id: { type: 'string' }, assistantId: { anyOf: [{ type: 'null' }, { type: 'string' }] } },
        required: ['id', 'assistantId'],
      },
    });
  });

  it('describes an empty list without guessing its items', () => {
    expect(inferSchema([])).toEqual({ type: 'array', items: {} });
  });
});
