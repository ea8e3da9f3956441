import { ProblemError, type Actor } from '@ally/contracts';

/** privacy's domain errors; the platform's filter turns them into problems over NATS, the gateway into HTTP. */
export class PrivacyRequestNotFound extends ProblemError {
  constructor() {
    super(404, 'No such privacy request');
  }
}

export class ExportNotReady extends ProblemError {
  constructor() {
    super(409, 'The export package is not ready yet; try again when the request is completed');
  }
}

export class ExportExpired extends ProblemError {
  constructor() {
    super(410, 'The export package has expired (it is kept 7 days); file a new request');
  }
}

export class RequestAlreadyOpen extends ProblemError {
  constructor(id: string) {
    super(409, `A request of this type and scope is already open (${id})`);
  }
}

export class ComplianceRoleRequired extends ProblemError {
  constructor() {
    super(403, 'This needs the compliance role');
  }
}

export class UnknownCategory extends ProblemError {
  constructor(what: string) {
    super(400, `Unknown data category: ${what}`, { errors: [{ field: 'category', message: `${what} is not a declared data category` }] });
  }
}

export class RetentionBelowLegalMinimum extends ProblemError {
  constructor(category: string, days: number) {
    super(422, `${category} is kept for a legal obligation: its retention cannot be shorter than ${days} days`);
  }
}

export class NotFound extends ProblemError {
  constructor(what: string) {
    super(404, `No such ${what}`);
  }
}

export class SignedInSessionRequired extends ProblemError {
  constructor() {
    super(403, 'Data-subject requests and compliance decisions need a signed-in session, not an API key');
  }
}

/**
 * A person at the keyboard, not an API key: a key is scoped to one workspace
 * and made for programs, while a request covers the whole account (export,
 * erasure) or decides someone else's.
 */
export function requireSignedIn(actor: Actor): Actor {
  if (actor.apiKeyWorkspace) throw new SignedInSessionRequired();
  return actor;
}

/** The `/v1/admin/privacy/*` guard, repeated here so a caller that bypasses the gateway is refused too. */
export function requireCompliance(actor: Actor): Actor {
  requireSignedIn(actor);
  if (!actor.platformRoles?.includes('compliance')) throw new ComplianceRoleRequired();
  return actor;
}
