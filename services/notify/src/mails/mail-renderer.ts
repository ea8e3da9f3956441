import { Inject, Injectable } from '@nestjs/common';
import Handlebars from 'handlebars';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { NOTIFY_CONFIG, type NotifyConfig } from '../config.js';

/** `services/notify/templates`, from src/ (tests) and dist/ (runtime) alike. */
const TEMPLATES = fileURLToPath(new URL('../../templates/', import.meta.url));

type Locale = 'de' | 'en';

const WORDS: Record<Locale, { roles: Record<string, string>; statuses: Record<string, string>; seats: [string, string] }> = {
  de: {
    roles: { owner: 'Inhaber', admin: 'Administrator', member: 'Mitglied' },
    statuses: {
      active: 'aktiv',
      trialing: 'Testphase',
      past_due: 'Zahlung überfällig',
      unpaid: 'unbezahlt',
      canceled: 'beendet',
      incomplete: 'Zahlung ausstehend',
      incomplete_expired: 'abgelaufen',
      paused: 'pausiert',
    },
    seats: ['Platz', 'Plätze'],
  },
  en: {
    roles: { owner: 'owner', admin: 'admin', member: 'member' },
    statuses: {
      active: 'active',
      trialing: 'trial',
      past_due: 'payment overdue',
      unpaid: 'unpaid',
      canceled: 'ended',
      incomplete: 'payment pending',
      incomplete_expired: 'expired',
      paused: 'paused',
    },
    seats: ['seat', 'seats'],
  },
};

const INTL_LOCALE: Record<Locale, string> = { de: 'de-DE', en: 'en-GB' };
const MAIL_TIME_ZONE = 'Europe/Berlin';

/** An ISO time as people read it, in German time with its zone: "5. Dezember 2026, 23:09 MEZ", "5 December 2026, 23:09 CET". */
function formatTime(iso: unknown, locale: Locale, withTime: boolean): string {
  const at = new Date(String(iso));
  if (iso === undefined || iso === null || Number.isNaN(at.getTime())) return String(iso ?? '');
  // In German time, as the business keeps its books and its deadlines (a period that ends at 23:30 UTC on
  // 31 December ends on 1 January here), the zone named with the time (MEZ/MESZ, CET/CEST).
  const date = new Intl.DateTimeFormat(INTL_LOCALE[locale], { day: 'numeric', month: 'long', year: 'numeric', timeZone: MAIL_TIME_ZONE }).format(at);
  if (!withTime) return date;
  const time = new Intl.DateTimeFormat(INTL_LOCALE[locale], { hour: '2-digit', minute: '2-digit', hourCycle: 'h23', timeZone: MAIL_TIME_ZONE, timeZoneName: 'short' }).format(at);
  return `${date}, ${time}`;
}

/** Units of a link's lifetime: [seconds, one (as "valid for …" takes it), many]. */
const UNITS: Record<Locale, [number, string, string][]> = {
  de: [[86_400, 'einen Tag', 'Tage'], [3600, 'eine Stunde', 'Stunden'], [60, 'eine Minute', 'Minuten'], [1, 'eine Sekunde', 'Sekunden']],
  en: [[86_400, 'one day', 'days'], [3600, 'one hour', 'hours'], [60, 'one minute', 'minutes'], [1, 'one second', 'seconds']],
};

/** Seconds as a span people read, in the largest unit that divides them: "24 Stunden", "7 days", "90 minutes". */
function formatDuration(seconds: unknown, locale: Locale): string {
  const n = Number(seconds);
  if (!Number.isInteger(n) || n <= 0) return String(seconds ?? '');
  const [size, one, many] = UNITS[locale].find(([unit]) => n % unit === 0)!;
  return n === size ? one : `${n / size} ${many}`;
}

/** A billing period ("2026-11") as a month people read: "November 2026". Anything else is shown as it came. */
function formatMonth(period: unknown, locale: Locale): string {
  if (!/^\d{4}-(0[1-9]|1[0-2])$/.test(String(period))) return String(period ?? '');
  return new Intl.DateTimeFormat(INTL_LOCALE[locale], { month: 'long', year: 'numeric', timeZone: 'UTC' }).format(new Date(`${period}-01T00:00:00Z`));
}

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
    // Values that events carry as codes (roles, Stripe statuses, ISO times) read in the mail's language.
    const localeOf = (options: Handlebars.HelperOptions): Locale => (options.data?.root?.locale === 'en' ? 'en' : 'de');
    this.hbs.registerHelper('roleName', (role: unknown, options: Handlebars.HelperOptions) => WORDS[localeOf(options)].roles[String(role)] ?? String(role));
    this.hbs.registerHelper('statusName', (status: unknown, options: Handlebars.HelperOptions) => WORDS[localeOf(options)].statuses[String(status)] ?? String(status));
    this.hbs.registerHelper('seatCount', (n: unknown, options: Handlebars.HelperOptions) => {
      const words = WORDS[localeOf(options)].seats;
      return `${n} ${Number(n) === 1 ? words[0] : words[1]}`;
    });
    this.hbs.registerHelper('planName', (plan: unknown) => String(plan ?? '').replace(/^./, (c) => c.toUpperCase()));
    this.hbs.registerHelper('dateTime', (iso: unknown, options: Handlebars.HelperOptions) => formatTime(iso, localeOf(options), true));
    this.hbs.registerHelper('date', (iso: unknown, options: Handlebars.HelperOptions) => formatTime(iso, localeOf(options), false));
    this.hbs.registerHelper('duration', (seconds: unknown, options: Handlebars.HelperOptions) => formatDuration(seconds, localeOf(options)));
    this.hbs.registerHelper('month', (period: unknown, options: Handlebars.HelperOptions) => formatMonth(period, localeOf(options)));
    this.layout = this.hbs.compile(readFileSync(`${TEMPLATES}layout.html.hbs`, 'utf8'));
  }

  render(template: string, locale: Locale, variables: Record<string, unknown>): RenderedMail {
    const compiled = this.compiled(template, locale);
    const context = { ...variables, baseUrl: this.config.PUBLIC_BASE_URL, locale };
    // One line: a name with a line or paragraph separator (which no control-character check catches) stays in it.
    const subject = compiled.subject(context).replace(/[\r\n\u2028\u2029\u0085]+/g, ' ').trim();
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
