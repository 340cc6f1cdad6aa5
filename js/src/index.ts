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
export { currentTraceId } from "./current.js";
export { DEFAULT_ENDPOINT, resolveEndpoint, resolveHeaders, serverUrl } from "./endpoint.js";
export {
  configureFeedback,
  endSession,
  flushFeedback,
  logFeedback,
  type Feedback,
  type FeedbackDestination,
} from "./feedback.js";
export {
  MAX_BAGGAGE_ID_LENGTH,
  SessionSpanProcessor,
  type SessionSpanProcessorOptions,
} from "./processor.js";
export { DEFAULT_PROJECT, installContextAndPropagators, register, type RegisterOptions } from "./register.js";
export * as semconv from "./semconv.js";
