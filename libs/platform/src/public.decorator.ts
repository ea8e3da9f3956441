import { SetMetadata } from '@nestjs/common';

export const IS_PUBLIC = 'ally:public';
/** The route needs no credentials (health probes, sign-in, JWKS). */
export const Public = () => SetMetadata(IS_PUBLIC, true);
