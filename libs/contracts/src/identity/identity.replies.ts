import type { Locale, OrgRole } from './identity.schemas.js';

export interface TokenPair {
  accessToken: string;
  refreshToken: string;
  /** Access token lifetime in seconds. */
  expiresIn: number;
  tokenType: 'Bearer';
}

export interface Membership {
  orgId: string;
  orgName: string;
  role: OrgRole;
}

export interface Me {
  id: string;
  email: string;
  firstName: string;
  lastName: string;
  locale: Locale;
  emailVerified: boolean;
  settings: { restrictToEu: boolean };
  memberships: Membership[];
}

export interface RegisterReply extends TokenPair {
  user: Me;
}

export interface ApiKeyCreated {
  id: string;
  name: string;
  workspace: string;
  key: string;
  createdAt: string;
}

export interface ApiKeySummary {
  id: string;
  name: string;
  workspace: string;
  prefix: string;
  createdAt: string;
  lastUsedAt: string | null;
}

export interface Organization {
  id: string;
  name: string;
  role: OrgRole;
  policy: OrgPolicy;
  createdAt: string;
}

export interface OrgPolicy {
  euOnly: boolean;
  allowedModels: string[] | null;
  chatRetentionDays: number | null;
  blockedTerms: string[];
}

export interface Member {
  userId: string;
  firstName: string;
  lastName: string;
  email: string;
  role: OrgRole;
  joinedAt: string;
}

export interface Invitation {
  id: string;
  orgId: string;
  email: string;
  role: OrgRole;
  expiresAt: string;
}

/** An invitation nobody accepted yet and still valid, as its organisation's owners and admins see it. */
export interface PendingInvitation extends Invitation {
  createdAt: string;
  /** Who sent it (null once they were erased). */
  invitedBy: string | null;
}

export interface ApiKeyIdentity {
  userId: string;
  workspace: string;
  platformRoles: ('compliance' | 'admin')[];
}

export interface Contact {
  /** Whose address it is: notify ties the mail to them (their export, their erasure, no mail once erased). */
  userId: string;
  email: string;
  firstName: string;
  locale: Locale;
}

export interface Jwks {
  keys: Record<string, unknown>[];
}

export interface SsoStart {
  authorizationUrl: string;
}

export interface Page<T> {
  data: T[];
  nextCursor: string | null;
}
