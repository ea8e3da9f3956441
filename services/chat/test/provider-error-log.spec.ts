import { describe, expect, it } from '@jest/globals';
import OpenAI from 'openai';
import { ProblemError } from '@ally/contracts';
import { providerErrorForLog } from '../src/completions/provider-error-log.js';

const PROMPT = 'Bitte Rechnung an jonas@example.eu, IBAN DE89370400440532013000';

/** A provider's refusal may quote what it was sent; chat logs the kind of failure, never its words. */
describe(providerErrorForLog.name, () => {
  it("keeps a provider's status, code and request id, and none of its message", () => {
    // A validation error in FastAPI's shape (a self-hosted model) repeats the input: the SDK turns the whole body into the message.
    const body = { detail: [{ type: 'value_error', msg: 'bad', input: { role: 'user', content: PROMPT } }] };
    const err = OpenAI.APIError.generate(422, body, JSON.stringify(body), new Headers({ 'x-request-id': 'req_123' }));
    expect(String(err)).toContain('jonas@example.eu');
    const logged = providerErrorForLog(err);
    expect(JSON.stringify(logged)).not.toMatch(/jonas|DE89|Rechnung/);
    expect(logged).toMatchObject({ name: 'UnprocessableEntityError', status: 422, requestId: 'req_123' });
  });

  it("logs of a parser's error only its kind (its message may quote the answer), and Ally's own problems in full", () => {
    let parse: unknown;
    try {
      JSON.parse(`{"content": ${PROMPT}`);
    } catch (err) {
      parse = err;
    }
    expect(JSON.stringify(providerErrorForLog(parse))).not.toMatch(/jonas|DE89|Rechnung/);
    expect(providerErrorForLog(parse)).toMatchObject({ name: 'SyntaxError' });
    expect(providerErrorForLog(new ProblemError(503, 'No allowed deployment is answering'))).toEqual({ name: 'ProblemError', status: 503, detail: 'No allowed deployment is answering' });
  });
});
