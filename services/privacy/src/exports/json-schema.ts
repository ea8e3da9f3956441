/** A JSON Schema (2020-12) describing a value as it is: the export's files are described by what they hold. */
export type JsonSchema = Record<string, unknown>;

const ISO_DATE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
/** Items described at once: alike ones collapse there, so a long list costs little more than its items. */
const CHUNK = 200;

export function inferSchema(value: unknown): JsonSchema {
  if (value === null || value === undefined) return { type: 'null' };
  if (typeof value === 'boolean') return { type: 'boolean' };
  if (typeof value === 'number') return { type: Number.isInteger(value) ? 'integer' : 'number' };
  if (typeof value === 'string') return ISO_DATE.test(value) ? { type: 'string', format: 'date-time' } : { type: 'string' };
  if (Array.isArray(value)) {
    if (value.length === 0) return { type: 'array', items: {} };
    // Every item, not a sample: a field first set, or of another type, in item 201 is in the schema too.
    let items: JsonSchema | undefined;
    for (let i = 0; i < value.length; i += CHUNK) items = mergeSchemas([...(items ? [items] : []), ...value.slice(i, i + CHUNK).map(inferSchema)]);
    return { type: 'array', items: items! };
  }
  const entries = Object.entries(value as Record<string, unknown>);
  return {
    type: 'object',
    properties: Object.fromEntries(entries.map(([k, v]) => [k, inferSchema(v)])),
    required: entries.map(([k]) => k),
  };
}

/** One schema covering all of them: objects merge their properties, other differences become anyOf. */
export function mergeSchemas(schemas: JsonSchema[]): JsonSchema {
  const unique = dedupe(schemas.flatMap((s) => (Array.isArray(s.anyOf) ? (s.anyOf as JsonSchema[]) : [s])));
  const objects = unique.filter((s) => s.type === 'object');
  const arrays = unique.filter((s) => s.type === 'array');
  const others = unique.filter((s) => s.type !== 'object' && s.type !== 'array');
  const merged: JsonSchema[] = [...others];
  if (objects.length) {
    const keys = [...new Set(objects.flatMap((o) => Object.keys(o.properties as object)))];
    merged.push({
      type: 'object',
      properties: Object.fromEntries(keys.map((k) => [k, mergeSchemas(objects.flatMap((o) => ((o.properties as Record<string, JsonSchema>)[k] ? [(o.properties as Record<string, JsonSchema>)[k]] : [])))])),
      required: keys.filter((k) => objects.every((o) => (o.required as string[]).includes(k))),
    });
  }
  if (arrays.length) merged.push({ type: 'array', items: mergeSchemas(arrays.map((a) => a.items as JsonSchema).filter((i) => Object.keys(i).length > 0)) });
  const dateAndString = merged.filter((s) => s.type === 'string');
  const compact = dateAndString.length > 1 ? [...merged.filter((s) => s.type !== 'string'), { type: 'string' }] : merged;
  if (compact.length === 0) return {};
  return compact.length === 1 ? compact[0] : { anyOf: compact };
}

function dedupe(schemas: JsonSchema[]): JsonSchema[] {
  const seen = new Map<string, JsonSchema>();
  for (const s of schemas) seen.set(JSON.stringify(s), s);
  return [...seen.values()];
}
