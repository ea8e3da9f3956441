import { ProblemError } from '@ally/contracts';

/**
 * The ZIP container of an export package, through fflate (small, no
 * dependencies, synchronous). Loaded on first use, so the service starts and
 * serves JSON downloads even where the package is missing.
 */
export async function zipFiles(files: Record<string, string>, mtime: Date): Promise<Buffer> {
  const fflate = await import('fflate').catch(() => null);
  if (!fflate) throw new ProblemError(503, 'ZIP packages are not available on this server (fflate is not installed); download with ?format=json');
  const entries = Object.fromEntries(Object.entries(files).map(([name, content]) => [name, fflate.strToU8(content)]));
  return Buffer.from(fflate.zipSync(entries, { level: 6, mtime }));
}
