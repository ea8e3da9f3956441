import { Ajv, type ValidateFunction } from 'ajv';

/**
 * Holds every answer a test gets from a gateway to the gateway's own OpenAPI
 * document: a success status the operation does not list, or a JSON body its
 * schema does not describe, fails the test that received it. So the document
 * cannot drift from what the server answers while the tests pass.
 */
interface Operation {
  pattern: RegExp;
  /** Literal path segments: of two templates that match, the one with more is the route (`/v1/models` before `/v1/{x}`). */
  literals: number;
  responses: Record<string, { content?: Record<string, { schema?: object }> }>;
  validators: Map<string, ValidateFunction>;
}

type Operations = Map<string, Operation[]>;

const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
/** One fetch of the document per gateway; null where the base URL serves none (another service, an emulator). */
const documents = new Map<string, Promise<Operations | null>>();

function operationsOf(baseUrl: string): Promise<Operations | null> {
  let document = documents.get(baseUrl);
  if (!document) {
    document = fetch(`${baseUrl}/docs/openapi.json`)
      .then(async (res) => (res.ok && res.headers.get('content-type')?.includes('json') ? indexed((await res.json()) as Parameters<typeof indexed>[0]) : null))
      .catch(() => {
        // Not reachable now (stopped, not yet started): asked again with the next answer.
        documents.delete(baseUrl);
        return null;
      });
    documents.set(baseUrl, document);
  }
  return document;
}

function indexed(doc: { paths?: Record<string, Record<string, { responses?: Operation['responses'] }>> }): Operations | null {
  if (!doc.paths) return null;
  const byMethod: Operations = new Map();
  for (const [template, item] of Object.entries(doc.paths)) {
    const segments = template.split('/');
    const pattern = new RegExp(`^${segments.map((s) => (/^\{.+\}$/.test(s) ? '[^/]+' : s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))).join('/')}$`);
    for (const [method, operation] of Object.entries(item)) {
      const list = byMethod.get(method.toUpperCase()) ?? [];
      list.push({ pattern, literals: segments.filter((s) => s && !s.startsWith('{')).length, responses: operation.responses ?? {}, validators: new Map() });
      byMethod.set(method.toUpperCase(), list);
    }
  }
  return byMethod;
}

/** What is wrong with an answer by the document, or undefined when it conforms (or the route or server has no document). */
export async function nonConformance(baseUrl: string, method: string, path: string, status: number, contentType: string | null, body: unknown): Promise<string | undefined> {
  if (status >= 400 || status === 304) return undefined; // problems are checked where they are made (one schema for all)
  const operations = await operationsOf(baseUrl);
  const pathname = new URL(path, 'http://x').pathname;
  const operation = operations
    ?.get(method.toUpperCase())
    ?.filter((o) => o.pattern.test(pathname))
    .sort((a, b) => b.literals - a.literals)[0];
  if (!operation) return undefined; // a page, or a route the document leaves out on purpose (development only)
  const response = operation.responses[String(status)];
  const route = `${method.toUpperCase()} ${pathname}`;
  if (!response) return `${route} answered ${status}, which its OpenAPI operation does not list (it lists ${Object.keys(operation.responses).join(', ')})`;
  const type = contentType?.split(';')[0].trim().toLowerCase();
  if (type !== 'application/json') return undefined;
  const schema = response.content?.['application/json']?.schema;
  if (!schema) return `${route} answered ${status} with a JSON body its OpenAPI operation does not describe`;
  let validate = operation.validators.get(String(status));
  if (!validate) {
    validate = ajv.compile(schema);
    operation.validators.set(String(status), validate);
  }
  if (validate(body)) return undefined;
  const errors = (validate.errors ?? []).slice(0, 5).map((e) => `${e.instancePath || '(body)'} ${e.message}${e.params && 'additionalProperty' in e.params ? ` (${e.params.additionalProperty})` : ''}`);
  return `${route} answered ${status} with a body its OpenAPI schema refuses: ${errors.join('; ')}`;
}
