import { Controller, Get, Inject, Req, Res } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ProblemError } from '@ally/contracts';
import { Public } from '@ally/platform';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config.js';
import { basePathOf } from '../common/base-path.js';
import { PAGES, pageSecurityPolicy, renderPage } from './pages.js';

/** `services/gateway/web/app.js`, from src/ (tests) and dist/ (runtime) alike. */
const SCRIPT = readFileSync(fileURLToPath(new URL('../../web/app.js', import.meta.url)), 'utf8');

/** A page's path as a pattern (`:id` any one segment), for `redirectTrailingSlash`. */
/** The mail-link pages, and the OpenAPI UI (`/docs/` loads its assets from `/docs/docs/…`, which do not exist). */
const PAGE_PATHS = [...Object.keys(PAGES), '/docs'].map((p) => new RegExp(`^${p.replace(/:[a-z]+/g, '[^/]+')}$`));

/**
 * A page asked for with a trailing slash ("/billing/", as a mail client or a
 * person may write it) is sent to the page (308), not answered with the
 * API's 404 as JSON. Everything else keeps its path.
 */
export function redirectTrailingSlash(fastify: FastifyInstance, basePath = ''): void {
  fastify.addHook('onRequest', async (req, reply) => {
    const [path, query] = req.url.split(/\?(.*)/s, 2);
    if (path.length < 2 || !path.endsWith('/')) return;
    const bare = path.replace(/\/+$/, '');
    // The query may hold a link's token: a 308 is cacheable by default, and the token would stay in the browser's cache.
    if (PAGE_PATHS.some((p) => p.test(bare))) return reply.header('cache-control', 'no-store').header('referrer-policy', 'no-referrer').redirect(`${basePath}${bare}${query ? `?${query}` : ''}`, 308);
  });
}

/** The pages the links in Ally's mails open (see pages.ts); everything else stays the API's. */
@ApiExcludeController()
@Public()
@Controller()
export class WebController {
  private readonly policy: string;
  private readonly basePath: string;

  constructor(@Inject(GATEWAY_CONFIG) config: GatewayConfig) {
    this.policy = pageSecurityPolicy(new URL(config.PUBLIC_BASE_URL).protocol === 'http:');
    this.basePath = basePathOf(config.PUBLIC_BASE_URL);
  }

  @Get([...Object.keys(PAGES)])
  page(@Req() req: FastifyRequest, @Res() reply: FastifyReply) {
    const page = PAGES[(req.routeOptions.url ?? '').replace(/\/$/, '') || '/'];
    if (!page) throw new ProblemError(404, `Cannot GET ${req.url.split('?')[0]}`);
    reply.header('content-type', 'text/html; charset=utf-8').header('cache-control', 'no-store').header('content-security-policy', this.policy).send(renderPage(page, this.basePath));
  }

  @Get('web/app.js')
  script(@Res() reply: FastifyReply) {
    reply.header('content-type', 'text/javascript; charset=utf-8').header('cache-control', 'public, max-age=300').send(SCRIPT);
  }
}
