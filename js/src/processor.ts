/**
 * SessionSpanProcessor: every span started in a session carries the session's ids.
 *
 * It runs for spans from any instrumentation (http, undici/fetch, an LLM client's
 * instrumentor, a hand-written `tracer.startActiveSpan`), not only spanloom's. At span start it
 * reads `session.id` / `user.id` from spanloom's context keys (set by `usingSession` and
 * friends) and, where those are absent, from W3C Baggage: the seed document's
 * `propagation.createBaggage(...)` + `context.with(...)` examples, and ids that arrived from
 * another service in a `baggage` header. Attributes a span already has are kept.
 */

import { context, propagation, type Context } from "@opentelemetry/api";
import type { ReadableSpan, Span, SpanProcessor } from "@opentelemetry/sdk-trace-base";

import {
  BAGGAGE_SESSION_ID,
  BAGGAGE_USER_ID,
  METADATA_KEY,
  SESSION_ID_KEY,
  TAGS_KEY,
  USER_ID_KEY,
} from "./context.js";
import { GEN_AI_CONVERSATION_ID, METADATA, SESSION_ID, TAG_TAGS, USER_ID } from "./semconv.js";
import { logFailure } from "./warn.js";

/** Baggage arrives from outside the process: longer values are not ids. */
export const MAX_BAGGAGE_ID_LENGTH = 256;

export interface SessionSpanProcessorOptions {
  /**
   * Read ids from W3C Baggage when the context has none of spanloom's own (default `true`).
   * Baggage from untrusted clients can name any session or user: a public-facing service may
   * prefer `false`, and set ids only from its own code.
   */
  readBaggage?: boolean;
}

function stringValue(value: unknown): string | undefined {
  return typeof value === "string" && value !== "" ? value : undefined;
}

function baggageId(ctx: Context, key: string): string | undefined {
  const value = propagation.getBaggage(ctx)?.getEntry(key)?.value;
  return typeof value === "string" && value !== "" && value.length <= MAX_BAGGAGE_ID_LENGTH
    ? value
    : undefined;
}

export class SessionSpanProcessor implements SpanProcessor {
  readonly readBaggage: boolean;

  constructor(options: SessionSpanProcessorOptions = {}) {
    this.readBaggage = options.readBaggage ?? true;
  }

  onStart(span: Span, parentContext: Context): void {
    try {
      const active = context.active();
      const ctx = parentContext ?? active;
      let sessionId = stringValue(ctx.getValue(SESSION_ID_KEY));
      let userId = stringValue(ctx.getValue(USER_ID_KEY));
      if (ctx !== active) {
        // An explicit parent context (say, extracted from a request) may lack what the code
        // around the span set with usingSession.
        sessionId ??= stringValue(active.getValue(SESSION_ID_KEY));
        userId ??= stringValue(active.getValue(USER_ID_KEY));
      }
      if (this.readBaggage && (sessionId === undefined || userId === undefined)) {
        sessionId ??= baggageId(ctx, BAGGAGE_SESSION_ID);
        userId ??= baggageId(ctx, BAGGAGE_USER_ID);
      }
      const existing = span.attributes;
      const add = (key: string, value: string | string[] | undefined): void => {
        if (value !== undefined && !(key in existing)) span.setAttribute(key, value);
      };
      add(SESSION_ID, sessionId);
      add(GEN_AI_CONVERSATION_ID, sessionId);
      add(USER_ID, userId);
      add(METADATA, stringValue(ctx.getValue(METADATA_KEY)));
      const tags = ctx.getValue(TAGS_KEY);
      if (Array.isArray(tags) && tags.length > 0) add(TAG_TAGS, [...(tags as string[])]);
    } catch (failure) {
      logFailure("SessionSpanProcessor.onStart", failure);
    }
  }

  onEnd(_span: ReadableSpan): void {}

  forceFlush(): Promise<void> {
    return Promise.resolve();
  }

  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}
