import helmet from '@fastify/helmet';
import { DocumentBuilder, SwaggerModule, type OpenAPIObject } from '@nestjs/swagger';
import { randomUUID } from 'node:crypto';
import type { ServiceDefinition } from '@ally/platform';
import { registerRateLimits } from './auth/rate-limits.js';
import { RESIDENCY_HEADER } from './chat/residency-header.js';
import { drainConnectionsOnClose } from './common/connection-drain.js';
import { answerClientError, answerUnservedRequests, answerWrongMethod, escapeMalformedPath, explainForbiddenJsonKeys, explainNonPreflightOptions, limitJsonDepth, requireHostHeader, requireJsonBodies } from './common/http-edges.js';
import { gatewayConfigSchema, type GatewayConfig } from './config.js';
import { GatewayModule } from './gateway.module.js';
import { basePathOf } from './common/base-path.js';
import { redirectTrailingSlash } from './web/web.controller.js';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** gateway: the public HTTP API; stateless, so it scales freely. */
export const gatewayService: ServiceDefinition<GatewayConfig> = {
  name: 'gateway',
  configSchema: gatewayConfigSchema,
  portVariable: 'GATEWAY_PORT',
  module: (ctx) => GatewayModule.forRoot(ctx),
  fastifyOptions: (config) => ({
    bodyLimit: config.BODY_LIMIT_BYTES,
    // A request (headers and body) must arrive within this: a body sent a byte at a time held its socket for ever
    // (Fastify's default 0 also switches off Node's own limit) and kept a stopping replica from closing. It ends
    // with the request's arrival, so it cuts no streamed answer.
    requestTimeout: 60_000,
    // Longer than a proxy's idle time (Traefik's 90 s): the proxy, not the gateway, closes an idle connection, so it
    // never sends a request down one the gateway is closing that moment (a POST is not retried: a 502).
    keepAliveTimeout: 95_000,
    trustProxy: config.TRUSTED_PROXIES.length ? config.TRUSTED_PROXIES : false,
    // Paths the router cannot decode, or whose parameter exceeds its limit (100 by
    // default), would be answered by the router alone, outside the problem filter;
    // an over-long id is then a 400 from the route like any other bad id.
    rewriteUrl: (req: { url?: string }) => escapeMalformedPath(req.url ?? '/'),
    routerOptions: { maxParamLength: 16 * 1024 },
    // Headers too large, a malformed request line: a problem too, not Fastify's plain JSON.
    clientErrorHandler: answerClientError,
    // A missing Host header too (Node's own answer is a bare 400): `requireHostHeader` below.
    http: { requireHostHeader: false },
    // A request arriving during shutdown too (Fastify's is plain JSON): `drainConnectionsOnClose` below.
    return503OnClosing: false,
    // A caller's x-request-id is kept when it is sane, otherwise we make one.
    genReqId: (req: { headers: Record<string, unknown> }) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
  }),
  async configureHttp(app, { config, nats, logger }) {
    const fastify = app.getHttpAdapter().getInstance();
    fastify.addHook('onRequest', async (req, reply) => {
      reply.header('x-request-id', req.id);
    });
    // Also on answers given by hooks that run before the one above (CORS preflights).
    fastify.addHook('onSend', async (req, reply) => {
      if (!reply.hasHeader('x-request-id')) reply.header('x-request-id', req.id);
      // The API's answers carry personal data: kept in no cache, the browser's on disk included, unless a route says so.
      if (req.url.startsWith('/v1/') && !reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
    });
    drainConnectionsOnClose(fastify);
    answerUnservedRequests(fastify.server);
    requireHostHeader(fastify);
    redirectTrailingSlash(fastify, basePathOf(config.PUBLIC_BASE_URL));
    requireJsonBodies(fastify);
    answerWrongMethod(fastify);
    explainNonPreflightOptions(fastify);
    explainForbiddenJsonKeys(app);
    limitJsonDepth(fastify);
    await registerRateLimits(fastify, config, nats, logger);
    const overHttp = new URL(config.PUBLIC_BASE_URL).protocol === 'http:';
    await app.register(helmet as any, {
      contentSecurityPolicy: {
        directives: {
          defaultSrc: ["'self'"],
          // The OpenAPI UI at /docs needs inline scripts and styles.
          scriptSrc: ["'self'", "'unsafe-inline'"],
          styleSrc: ["'self'", "'unsafe-inline'"],
          imgSrc: ["'self'", 'data:'],
          // Served over plain HTTP (a laptop, the local cluster), "upgrade" would send the pages' script to an HTTPS port nobody serves.
          upgradeInsecureRequests: overHttp ? null : [],
        },
      },
    });
    app.enableCors({
      origin: config.CORS_ORIGINS,
      credentials: true,
      // Every method the API uses (@fastify/cors allows only GET, HEAD and POST unless told: a browser could not PATCH or DELETE).
      methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
      // What a browser client reads: the SDK's retry advice (a 504 not to ask again), an export's name and checksum, a 405's methods.
      exposedHeaders: ['x-request-id', 'retry-after', 'x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset', RESIDENCY_HEADER, 'x-should-retry', 'content-disposition', 'x-content-sha256', 'allow'],
      maxAge: 600,
    });
    const document = SwaggerModule.createDocument(
      app,
      new DocumentBuilder()
        .setTitle('Ally API')
        .setDescription('EU-sovereign AI assistant platform. Errors are application/problem+json (RFC 9457).')
        .setVersion('1')
        .addBearerAuth({ type: 'http', scheme: 'bearer', description: 'Access JWT or an API key (ally_…)' })
        .addServer(config.PUBLIC_BASE_URL)
        .build(),
    );
    withProblemAnswers(document);
    SwaggerModule.setup('docs', app, document, { jsonDocumentUrl: 'docs/openapi.json' });
  },
};

/** Every operation's errors are problem details (RFC 9457): one schema, as each operation's `default` answer. */
function withProblemAnswers(document: OpenAPIObject): void {
  document.components ??= {};
  document.components.schemas ??= {};
  document.components.schemas.Problem = {
    type: 'object',
    required: ['type', 'title', 'status'],
    properties: {
      type: { type: 'string', format: 'uri' },
      title: { type: 'string' },
      status: { type: 'integer', minimum: 400, maximum: 599 },
      detail: { type: 'string', description: 'what is wrong, in words' },
      errors: {
        type: 'array',
        description: 'the fields a validation refused',
        items: { type: 'object', required: ['field', 'message'], properties: { field: { type: 'string' }, message: { type: 'string' } } },
      },
    },
  };
  const problem = { description: 'An error: 4xx for what the request got wrong, 503 when a dependency is down', content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } } };
  for (const item of Object.values(document.paths)) {
    for (const method of ['get', 'put', 'post', 'delete', 'patch'] as const) {
      const operation = item[method];
      if (operation) operation.responses = { ...operation.responses, default: problem };
    }
  }
}
