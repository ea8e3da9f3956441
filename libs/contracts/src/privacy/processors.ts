/**
 * Recipients and processors named in the privacy policy (status 18 September
 * 2024), with their transfer bases. Data categories name processors in prose;
 * `matches` ties that prose to an entry here, so the register and the export
 * state one fact once.
 */
export const PROCESSOR_IDS = ['openai', 'microsoft', 'stripe', 'brevo', 'hetzner', 'pathway', 'webflow'] as const;

export interface Processor {
  id: (typeof PROCESSOR_IDS)[number];
  name: string;
  address: string;
  country: string;
  service: string;
  basis: string;
  /** Transfer basis for the EU/EEA and for Switzerland (Art. 44 ff. GDPR, Art. 16 DSG). */
  transferBasis: { euEea: string; switzerland: string };
  dpa: string;
  /** Keeps copies of personal data we must tell about an erasure or rectification (Art. 19 GDPR). */
  holdsCopies: boolean;
  matches: RegExp;
}

export const PROCESSORS: readonly Processor[] = [
  {
    id: 'openai',
    name: 'OpenAI Ireland Ltd',
    address: '117-126 Sheriff Street Upper, D01 YC43 Dublin 1, Ireland',
    country: 'IE',
    service: 'AI models through the OpenAI API: its EU data-residency endpoint for everyone, its models outside the EU only when the user allows them',
    basis: 'legitimate interest (Art. 6(1)(f) GDPR)',
    transferBasis: { euEea: 'standard contractual clauses (Art. 46(2)(c) GDPR) in the OpenAI data processing addendum', switzerland: 'adequacy decision (Ireland)' },
    dpa: 'https://openai.com/policies/data-processing-addendum',
    holdsCopies: false,
    matches: /OpenAI Ireland|OpenAI \(US\)/,
  },
  {
    id: 'microsoft',
    name: 'Microsoft Ireland Operations Limited',
    address: 'One Microsoft Place, South County Business Park, Leopardstown, Dublin 18, D18 P521, Ireland',
    country: 'IE',
    service: 'Azure OpenAI Service: deployments in EU regions for everyone; a Global deployment (which may process anywhere) only when the user allows models outside the EU',
    basis: 'legitimate interest (Art. 6(1)(f) GDPR)',
    transferBasis: { euEea: 'EU-US Data Privacy Framework (adequacy decision of 10 July 2023)', switzerland: 'adequacy decision (Ireland)' },
    dpa: 'https://azure.microsoft.com/de-de/support/legal/',
    holdsCopies: false,
    matches: /Microsoft/,
  },
  {
    id: 'stripe',
    name: 'Stripe, Inc.',
    address: '510 Townsend Street, San Francisco, CA 94103, USA',
    country: 'US',
    service: 'payments, subscriptions, invoices and billing meters',
    basis: 'contract (Art. 6(1)(b) GDPR)',
    // The policy names the EU/EEA basis only, and Stripe's privacy policy where others have a processing agreement.
    transferBasis: { euEea: 'EU-US Data Privacy Framework (adequacy decision of 10 July 2023)', switzerland: 'not named in the privacy policy' },
    dpa: 'not named in the privacy policy (Stripe’s privacy policy: https://stripe.com/de/privacy)',
    holdsCopies: true,
    matches: /Stripe/,
  },
  {
    id: 'brevo',
    name: 'Sendinblue GmbH (Brevo)',
    address: 'Köpenicker Str. 126, 10179 Berlin, Germany',
    country: 'DE',
    service: 'transactional email',
    basis: 'legitimate interest (Art. 6(1)(f) GDPR)',
    transferBasis: { euEea: 'none needed (processing in the EU)', switzerland: 'adequacy decision (Germany)' },
    dpa: 'provided by the service provider',
    holdsCopies: true,
    matches: /Brevo|Sendinblue/,
  },
  {
    id: 'hetzner',
    name: 'Hetzner Online GmbH',
    address: 'Industriestr. 25, 91710 Gunzenhausen, Germany',
    country: 'DE',
    service: 'hosting: servers, storage and computing capacity in the EU',
    basis: 'legitimate interest (Art. 6(1)(f) GDPR)',
    transferBasis: { euEea: 'none needed (processing in the EU)', switzerland: 'adequacy decision (Germany)' },
    dpa: 'https://docs.hetzner.com/de/general/general-terms-and-conditions/data-privacy-faq/',
    holdsCopies: false,
    matches: /Hetzner/,
  },
  {
    id: 'pathway',
    name: 'Pathway Solutions GmbH',
    address: 'Alstertwiete 3, 20099 Hamburg, Germany',
    country: 'DE',
    service: 'bookkeeping: orders, customer and payment data taken from the payment provider and turned into booking records',
    basis: 'legitimate interest (Art. 6(1)(f) GDPR)',
    transferBasis: { euEea: 'none needed (processing in the EU)', switzerland: 'adequacy decision (Germany)' },
    dpa: 'provided by the service provider',
    // Booking records are kept for the tax law's periods: an erasure restricts invoices, it does not delete them.
    holdsCopies: false,
    matches: /Pathway/,
  },
  {
    id: 'webflow',
    name: 'Webflow, Inc.',
    address: '208 Utah, Suite 210, San Francisco, CA 94103, USA',
    country: 'US',
    service: 'the website and its online forms, where visitors give or refuse their consents',
    basis: 'legitimate interest (Art. 6(1)(f) GDPR)',
    transferBasis: { euEea: 'EU-US Data Privacy Framework (adequacy decision of 10 July 2023)', switzerland: 'standard contractual clauses' },
    dpa: 'https://webflow.com/legal/sign-dpa',
    holdsCopies: false,
    matches: /Webflow/,
  },
];

/** The controller and the supervisory authority, as the privacy policy names them. */
export const CONTROLLER = {
  name: 'fellowork GmbH',
  address: 'Zur Gießerei 6, 76227 Karlsruhe, Germany',
  email: 'info@fellowork.de',
  privacyPolicyVersion: '2024-09-18',
  supervisoryAuthority:
    'Der Landesbeauftragte für den Datenschutz und die Informationsfreiheit Baden-Württemberg, Prof. Dr. Tobias Keber, Postfach 10 29 32, 70025 Stuttgart, or Lautenschlagerstraße 20, 70173 Stuttgart, phone +49 711 6155410, poststelle@lfdi.bwl.de',
} as const;

/** The catalog entries a category's processor list names. */
export function processorsOf(names: readonly string[]): Processor[] {
  return PROCESSORS.filter((p) => names.some((n) => p.matches.test(n)));
}
