export { identityService } from './identity.service.js';
export { addressHashKey, keyedAddressHash } from './common/address-hash.js';
