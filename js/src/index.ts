/**
 * spanloom for Node: OpenTelemetry tracing in which every span carries `session.id` and `user.id`.
 */

export {
  BAGGAGE_SESSION_ID,
  BAGGAGE_USER_ID,
  METADATA_KEY,
  SESSION_ID_KEY,
  TAGS_KEY,
  USER_ID_KEY,
  contextWithAttributes,
  getAttributesFromContext,
  propagationHeaders,
  usingAttributes,
  usingSession,
  usingUser,
  type PropagationOptions,
  type SpanloomAttributes,
} from "./context.js";
export {
  MAX_BAGGAGE_ID_LENGTH,
  SessionSpanProcessor,
  type SessionSpanProcessorOptions,
} from "./processor.js";
export {
  DEFAULT_ENDPOINT,
  DEFAULT_PROJECT,
  installContextAndPropagators,
  register,
  resolveEndpoint,
  resolveHeaders,
  type RegisterOptions,
} from "./register.js";
export * as semconv from "./semconv.js";
