import pg from 'pg';

export interface ProvisionOptions {
  /** A superuser or a role with CREATEROLE, used only by `migrate`. */
  adminUrl: string;
  schema: string;
  /** The login role the service runs as, taken from its DATABASE_URL. */
  serviceUrl: string;
}

const ident = (name: string): string => {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`Unsafe SQL identifier: ${name}`);
  return `"${name}"`;
};

/**
 * Creates the service's login role and its schema, owned by that role, and
 * nothing more: the role gets no rights on other schemas, so a service cannot
 * read another service's data even by mistake.
 */
export async function provisionServiceSchema(opts: ProvisionOptions): Promise<void> {
  const service = new URL(opts.serviceUrl);
  const role = decodeURIComponent(service.username);
  const password = decodeURIComponent(service.password);
  const database = service.pathname.replace(/^\//, '');
  const admin = new pg.Client({ connectionString: opts.adminUrl });
  await admin.connect();
  try {
    // Serialises concurrent migrate runs of several services in one cluster.
    await admin.query('SELECT pg_advisory_lock(hashtext($1))', ['ally-provision']);
    const exists = await admin.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role]);
    const pw = password ? ` PASSWORD ${pg.escapeLiteral(password)}` : '';
    if (exists.rowCount === 0) {
      await admin.query(`CREATE ROLE ${ident(role)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE${pw}`);
    } else if (password) {
      await admin.query(`ALTER ROLE ${ident(role)}${pw}`);
    }
    await admin.query(`REVOKE ALL ON SCHEMA public FROM PUBLIC`);
    await admin.query(`GRANT CONNECT ON DATABASE ${ident(database)} TO ${ident(role)}`);
    await admin.query(`CREATE SCHEMA IF NOT EXISTS ${ident(opts.schema)} AUTHORIZATION ${ident(role)}`);
    await admin.query(`ALTER SCHEMA ${ident(opts.schema)} OWNER TO ${ident(role)}`);
    await admin.query(`ALTER ROLE ${ident(role)} IN DATABASE ${ident(database)} SET search_path = ${ident(opts.schema)}`);
    await admin.query('SELECT pg_advisory_unlock(hashtext($1))', ['ally-provision']);
  } finally {
    await admin.end();
  }
}
