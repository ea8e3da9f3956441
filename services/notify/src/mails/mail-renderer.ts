import { Inject, Injectable } from '@nestjs/common';
import Handlebars from 'handlebars';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { NOTIFY_CONFIG, type NotifyConfig } from '../config.js';

/** `services/notify/templates`, from src/ (tests) and dist/ (runtime) alike. */
const TEMPLATES = fileURLToPath(new URL('../../templates/', import.meta.url));

export interface RenderedMail {
  subject: string;
  html: string;
  text: string;
}

type Compiled = { subject: HandlebarsTemplateDelegate; html: HandlebarsTemplateDelegate; text: HandlebarsTemplateDelegate };

/**
 * Handlebars templates per mail and language (`templates/<mail>/<de|en>.html.hbs`
 * and `.txt.hbs`, whose first line is `Subject: …`), inside one HTML layout.
 * A missing language falls back to German.
 */
@Injectable()
export class MailRenderer {
  private readonly hbs = Handlebars.create();
  private readonly cache = new Map<string, Compiled>();
  private readonly layout: HandlebarsTemplateDelegate;

  constructor(@Inject(NOTIFY_CONFIG) private readonly config: NotifyConfig) {
    this.hbs.registerHelper('eq', (a: unknown, b: unknown) => a === b);
    this.layout = this.hbs.compile(readFileSync(`${TEMPLATES}layout.html.hbs`, 'utf8'));
  }

  render(template: string, locale: 'de' | 'en', variables: Record<string, unknown>): RenderedMail {
    const compiled = this.compiled(template, locale);
    const context = { ...variables, baseUrl: this.config.PUBLIC_BASE_URL.replace(/\/$/, ''), locale };
    const subject = compiled.subject(context).trim();
    return { subject, html: this.layout({ subject, locale, body: new Handlebars.SafeString(compiled.html(context)) }), text: compiled.text(context).trim() + '\n' };
  }

  private compiled(template: string, locale: 'de' | 'en'): Compiled {
    const lang = existsSync(`${TEMPLATES}${template}/${locale}.txt.hbs`) ? locale : 'de';
    const key = `${template}/${lang}`;
    let found = this.cache.get(key);
    if (!found) {
      const txt = readFileSync(`${TEMPLATES}${key}.txt.hbs`, 'utf8');
      const [first, ...rest] = txt.split('\n');
      if (!first.startsWith('Subject: ')) throw new Error(`${key}.txt.hbs must start with "Subject: "`);
      found = {
        subject: this.hbs.compile(first.slice('Subject: '.length), { noEscape: true }),
        text: this.hbs.compile(rest.join('\n'), { noEscape: true }),
        html: this.hbs.compile(readFileSync(`${TEMPLATES}${key}.html.hbs`, 'utf8')),
      };
      this.cache.set(key, found);
    }
    return found;
  }
}
