import { Injectable } from '@nestjs/common';
import { IdentityEvents } from '@ally/contracts';
import { Outbox } from '@ally/messaging';

/** identity's events, written in the same transaction as the change they describe. */
@Injectable()
export class IdentityOutbox extends Outbox<typeof IdentityEvents> {
  constructor() {
    super('identity', IdentityEvents);
  }
}
