/**
 * The id of the turn being traced, in the form the server and `logFeedback` use.
 */

import { isSpanContextValid, trace } from "@opentelemetry/api";

/**
 * The active span's trace id (32 hex digits: the turn's id in spanloom), or `undefined` outside
 * a recorded span. Send it to the front end with the answer; its thumbs-up then comes back as
 * `logFeedback({ score: 1, traceId })`.
 */
export function currentTraceId(): string | undefined {
  const spanContext = trace.getActiveSpan()?.spanContext();
  return spanContext && isSpanContextValid(spanContext) ? spanContext.traceId : undefined;
}
