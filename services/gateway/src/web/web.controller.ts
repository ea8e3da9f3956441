import { Controller, Get, Req, Res } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ProblemError } from '@ally/contracts';
import { Public } from '@ally/platform';
import { PAGES, renderPage } from './pages.js';

/** `services/gateway/web/app.js`, from src/ (tests) and dist/ (runtime) alike. */
const SCRIPT = readFileSync(fileURLToPath(new URL('../../web/app.js', import.meta.url)), 'utf8');

/** The pages the links in Ally's mails open (see pages.ts); everything else stays the API's. */
@ApiExcludeController()
@Public()
@Controller()
export class WebController {
  @Get([...Object.keys(PAGES)])
  page(@Req() req: FastifyRequest, @Res() reply: FastifyReply) {
    const page = PAGES[(req.routeOptions.url ?? '').replace(/\/$/, '') || '/'];
    if (!page) throw new ProblemError(404, `Cannot GET ${req.url.split('?')[0]}`);
    reply.header('content-type', 'text/html; charset=utf-8').header('cache-control', 'no-store').send(renderPage(page));
  }

  @Get('web/app.js')
  script(@Res() reply: FastifyReply) {
    reply.header('content-type', 'text/javascript; charset=utf-8').header('cache-control', 'public, max-age=300').send(SCRIPT);
  }
}
