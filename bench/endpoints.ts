/**
 * Where bench clients and gateways connect. The bench's servers refuse any
 * other path, so a stray dial from a concurrent test (a gateway redialling a
 * port the kernel has since handed to a bench server) is not counted as a
 * client or a link.
 */
export const PATH = '/bench'
export const LINK_PATH = '/bench-link'
