/** Wire protocol version, sent in every `hello`. Bump on any incompatible change to PROTOCOL.md. */
export const PROTOCOL_VERSION = 1
