import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { gatewayService } from '@ally/gateway';
import { createTestEnv, httpClient, type TestEnv } from '@ally/testing';

/** The OpenAPI document says what the server does: who may call, which query parameters it takes, how it fails. */
describe('the OpenAPI document', () => {
  let env: TestEnv;
  let doc: any;

  beforeAll(async () => {
    env = await createTestEnv();
    const http = httpClient((await env.start(gatewayService)).url);
    doc = (await http.get('/docs/openapi.json')).body;
  });

  afterAll(async () => {
    await env?.close();
  });

  const op = (method: string, path: string) => doc.paths[path][method];
  const query = (method: string, path: string) =>
    Object.fromEntries((op(method, path).parameters ?? []).filter((p: any) => p.in === 'query').map((p: any) => [p.name, p.required ? 'required' : 'optional']));

  it('asks no bearer token of the routes that need none, and one of the others', () => {
    for (const [method, path] of [
      ['get', '/v1/billing/plans'],
      ['post', '/v1/webhooks/stripe'],
      ['post', '/v1/privacy/consents'],
      ['get', '/v1/privacy/consents/{subjectId}'],
      ['delete', '/v1/privacy/consents/{subjectId}'],
      ['post', '/v1/auth/login'],
    ]) {
      expect({ route: `${method} ${path}`, security: op(method, path).security ?? [] }).toEqual({ route: `${method} ${path}`, security: [] });
    }
    for (const [method, path] of [
      ['get', '/v1/billing/subscription'],
      ['post', '/v1/privacy/requests'],
      ['get', '/v1/me'],
    ]) {
      expect(op(method, path).security).toEqual([{ bearer: [] }]);
    }
  });

  it('names every query parameter a route takes, and which it requires, from the schema that parses them', () => {
    expect({
      subscription: query('get', '/v1/billing/subscription'),
      usage: query('get', '/v1/billing/usage'),
      invoices: query('get', '/v1/billing/invoices'),
      privacyRequests: query('get', '/v1/privacy/requests'),
      download: query('get', '/v1/privacy/requests/{id}/download'),
      apiKeys: query('get', '/v1/me/api-keys'),
      members: query('get', '/v1/orgs/{orgId}/members'),
      conversation: query('get', '/v1/conversations/{id}'),
      legalHolds: query('get', '/v1/admin/privacy/legal-holds'),
      adminRequests: query('get', '/v1/admin/privacy/requests'),
    }).toEqual({
      subscription: { workspace: 'required' },
      usage: { workspace: 'required', period: 'optional' },
      invoices: { workspace: 'required', limit: 'optional', cursor: 'optional' },
      privacyRequests: { limit: 'optional', cursor: 'optional' },
      download: { format: 'optional' },
      apiKeys: { limit: 'optional', cursor: 'optional' },
      members: { limit: 'optional', cursor: 'optional' },
      conversation: { limit: 'optional', cursor: 'optional' },
      legalHolds: { active: 'optional', limit: 'optional', cursor: 'optional' },
      adminRequests: { status: 'optional', awaiting: 'optional', limit: 'optional', cursor: 'optional' },
    });
    const limit = op('get', '/v1/conversations').parameters.find((p: any) => p.name === 'limit');
    expect(limit.schema).toMatchObject({ type: 'integer', minimum: 1, maximum: 100, default: 20 });
  });

  it('documents the optional Accept-Language of registration and the redirect of the SSO start', () => {
    expect(op('post', '/v1/auth/register').parameters.find((p: any) => p.name === 'accept-language')).toMatchObject({ in: 'header', required: false });
    expect(Object.keys(op('get', '/v1/auth/sso/{provider}/start').responses)).toContain('302');
  });

  it('gives every operation its problem answer (RFC 9457)', () => {
    expect(doc.components.schemas.Problem.required).toEqual(['type', 'title', 'status']);
    for (const [path, item] of Object.entries<any>(doc.paths)) {
      for (const [method, operation] of Object.entries<any>(item)) {
        expect({ route: `${method} ${path}`, problem: operation.responses.default?.content?.['application/problem+json']?.schema }).toEqual({
          route: `${method} ${path}`,
          problem: { $ref: '#/components/schemas/Problem' },
        });
      }
    }
  });
});
