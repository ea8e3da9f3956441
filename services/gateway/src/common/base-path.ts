/** The path PUBLIC_BASE_URL puts Ally under ('' at the root): behind it, the pages, their script, the API and cookies are under it. */
export const basePathOf = (publicBaseUrl: string): string => new URL(publicBaseUrl).pathname.replace(/\/+$/, '');
