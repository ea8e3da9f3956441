import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { gatewayService } from '@ally/gateway';
import { createTestEnv, httpClient, nonConformance, type TestEnv } from '@ally/testing';

/** The OpenAPI document says what the server does: who may call, which query parameters it takes, how it fails. */
describe('the OpenAPI document', () => {
  let env: TestEnv;
  let doc: any;
  let url: string;

  beforeAll(async () => {
    env = await createTestEnv();
    url = (await env.start(gatewayService)).url;
    const http = httpClient(url);
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

  it('describes the answer of every operation: JSON by its schema, a stream, a file or a redirect by its media type', () => {
    const undescribed: string[] = [];
    for (const [path, item] of Object.entries<any>(doc.paths)) {
      for (const [method, operation] of Object.entries<any>(item)) {
        const success = Object.entries<any>(operation.responses).filter(([status]) => /^[23]/.test(status));
        const described = success.some(([status, r]) => status === '204' || status === '302' || Object.values<any>(r.content ?? {}).some((c) => c.schema));
        if (!described) undescribed.push(`${method} ${path}`);
      }
    }
    expect(undescribed).toEqual([]);
    const me = op('get', '/v1/me').responses['200'].content['application/json'].schema;
    expect(me).toMatchObject({ type: 'object', required: expect.arrayContaining(['id', 'email', 'settings', 'memberships']), additionalProperties: false });
    expect(Object.keys(op('post', '/v1/conversations/{id}/messages').responses)).toEqual(expect.arrayContaining(['201', '200']));
    // One status, two media types: both stay (a second response of the same status would replace the first).
    expect(Object.keys(op('post', '/v1/chat/completions').responses['200'].content).sort()).toEqual(['application/json', 'text/event-stream']);
    expect(Object.keys(op('get', '/v1/admin/privacy/processing-activities').responses['200'].content).sort()).toEqual(['application/json', 'text/csv']);
  });

  it("holds an answer to the document: a field it does not name, a wrong type or a status it does not list is refused (the tests' HTTP client asks this of every answer)", async () => {
    const plan = { id: 'team', name: 'Team', currency: 'eur', pricePerSeat: 900, monthlyTokensPerSeat: 1000, selfService: true };
    expect(await nonConformance(url, 'GET', '/v1/billing/plans?limit=2', 200, 'application/json', { data: [plan], nextCursor: null })).toBeUndefined();
    expect(await nonConformance(url, 'GET', '/v1/billing/plans', 200, 'application/json', { data: [{ ...plan, secret: 1 }], nextCursor: null })).toMatch(/refuses: \/data\/0 must NOT have additional properties \(secret\)/);
    expect(await nonConformance(url, 'GET', '/v1/billing/plans', 200, 'application/json', { data: [{ ...plan, pricePerSeat: '9' }], nextCursor: null })).toMatch(/pricePerSeat must be integer/);
    expect(await nonConformance(url, 'GET', '/v1/billing/plans', 201, 'application/json', {})).toMatch(/answered 201, which its OpenAPI operation does not list/);
    // Errors are problems, checked where they are made; a path the document does not have (the pages) is not held to it.
    expect(await nonConformance(url, 'GET', '/v1/billing/plans', 400, 'application/problem+json', {})).toBeUndefined();
    expect(await nonConformance(url, 'GET', '/verify-email', 200, 'text/html', '<html>')).toBeUndefined();
  });
});
