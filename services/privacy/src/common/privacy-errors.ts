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
  constructor(expiredAt: Date) {
    super(410, `The export package expired on ${expiredAt.toISOString()}; file a new request`);
  }
}

export class ExportVoided extends ProblemError {
  constructor() {
    super(410, 'The export package was deleted because data of yours was erased after it was prepared; file a new request');
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
    super(400, `Invalid request body: category (${what} is not a declared data category)`, { errors: [{ field: 'category', message: `${what} is not a declared data category` }] });
  }
}

/** Several unknown category names of one list, each named by its place (`categories.0`, …). */
export class UnknownCategories extends ProblemError {
  constructor(unknown: { index: number; name: string }[], list = 'categories') {
    const errors = unknown.map((u) => ({ field: `${list}.${u.index}`, message: `${u.name} is not a declared data category` }));
    super(400, `Invalid request body: ${errors.map((e) => `${e.field} (${e.message})`).join('; ')}`, { errors });
  }
}

export class RetentionRunInProgress extends ProblemError {
  constructor(readonly runId: string) {
    super(409, `Retention run ${runId} has not finished yet; start the next one when it has (two at once would each delete and count a part)`);
  }
}

export class ErasureUnderWay extends ProblemError {
  constructor(requestId: string, service: string) {
    super(
      409,
      `An erasure of this account (request ${requestId}) has begun (its ${service} data is deleted or being deleted), which a hold can neither stop nor undo: it runs to its end; what the law keeps (invoices) stays by its own rule`,
    );
  }
}

export class RetentionBelowLegalMinimum extends ProblemError {
  constructor(category: string, days: number) {
    super(422, `${category} must by law be kept at least ${days} days: its retention cannot be shorter`);
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
