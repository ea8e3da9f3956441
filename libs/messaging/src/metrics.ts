import type { Registry } from 'prom-client';

/** The registry's metric of this name, made by `create` the first time: every relay and consumer of a service shares one. */
export function getOrCreate<T>(registry: Registry, name: string, create: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? create();
}
