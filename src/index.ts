/** Gatehouse's programmatic API: embed the gateway, or validate a config. */
export { createGateway, gatehousePlugin, type GatewayOptions, type GatehousePluginOptions } from './gateway.js'
export { requestSerializer, type RawRequest } from './logger.js'
export { clientErrorHandler, frameworkErrors } from '../routes/upgrades.js'
export { parseConfig, loadConfigFile, ConfigError } from './config/load.js'
export type { GatewayConfig, EndpointConfig } from './config/schema.js'
export * as protocol from '../protocol/index.js'
