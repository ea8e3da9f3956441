import { Injectable } from '@nestjs/common';
import { PrivacyEvents } from '@ally/contracts';
import { Outbox } from '@ally/messaging';

/** privacy's typed outbox: events commit with the state change that causes them. */
@Injectable()
export class PrivacyOutbox extends Outbox<typeof PrivacyEvents> {
  constructor() {
    super('privacy', PrivacyEvents);
  }
}
