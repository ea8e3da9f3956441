/**
 * Azure regions in EU member states, as Azure names them in `x-ms-region`
 * ('Sweden Central') or in ARM ('swedencentral'). Switzerland, Norway and the
 * UK are not among them: a user restricted to the EU is promised the EU.
 */
const EU_AZURE_REGIONS = new Set([
  'swedencentral',
  'swedensouth',
  'germanywestcentral',
  'germanynorth',
  'westeurope',
  'northeurope',
  'francecentral',
  'francesouth',
  'italynorth',
  'polandcentral',
  'spaincentral',
  'austriaeast',
  'belgiumcentral',
  'denmarkeast',
]);

export const isEuRegion = (name: string): boolean => EU_AZURE_REGIONS.has(name.toLowerCase().replace(/[\s_-]/g, ''));

/** An EU deployment that did not report a region outside the EU (Azure's `x-ms-region`; others report none). */
export const servedInEu = (d: { euResident: boolean }, reportedRegion: string | null): boolean => d.euResident && (reportedRegion === null || isEuRegion(reportedRegion));
