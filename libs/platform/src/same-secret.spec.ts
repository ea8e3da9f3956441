import { describe, expect, it } from '@jest/globals';
import { sameSecret } from './same-secret.js';

describe(sameSecret.name, () => {
  it('matches the same secret only, whatever the lengths, and never an empty one', () => {
    expect(sameSecret('a-state-Xy_9', 'a-state-Xy_9')).toBe(true);
    expect(sameSecret('a-state-Xy_9', 'a-state-Xy_8')).toBe(false);
    expect(sameSecret('a-state', 'a-state-Xy_9')).toBe(false);
    expect(sameSecret('', '')).toBe(false);
    expect(sameSecret('x', '')).toBe(false);
  });
});
