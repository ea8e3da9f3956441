/** Who an erased subject's usage is billed as: the organisation's books keep the amount, not the person. */
export const ERASED_USER = '00000000-0000-0000-0000-000000000000';
