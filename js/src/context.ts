/**
 * Session, user, metadata and tags in the OpenTelemetry context, mirroring the Python SDK's
 * `using_session` / `using_user` / `using_attributes`.
 *
 * Each helper runs `fn` in a context that holds the values under spanloom's own context keys,
 * which `SessionSpanProcessor` reads: the ids stay inside the process, as with the Python SDK.
 * With `propagate: true` the ids also go into W3C Baggage (`session.id`, `user.id`), exactly as
 * the seed document's `propagation.createBaggage` examples put them, and the W3C baggage
 * propagator then sends them with every outgoing HTTP request an instrumented client makes, to
 * whichever host it goes (LLM vendors and other third parties included). So that is opt-in.
 *
 * The context keys are registered symbols named after the span attributes themselves
 * (`Symbol.for("session.id")`), the JavaScript counterpart of the Python SDK using the plain
 * attribute names as keys: any copy of this package (its ESM and its CommonJS build, two
 * versions in one tree) and any other library that uses the same names reads the same entries.
 *
 * The values survive `await`, timers and callbacks when a context manager is registered, which
 * `register()` does (AsyncLocalStorage).
 */

import { context, propagation, type Baggage, type Context } from "@opentelemetry/api";

import { GEN_AI_CONVERSATION_ID, METADATA, SESSION_ID, TAG_TAGS, USER_ID } from "./semconv.js";
import { describe, reject, warnOnce } from "./warn.js";

/** Context key of the session id (a string). */
export const SESSION_ID_KEY: unique symbol = Symbol.for(SESSION_ID) as typeof SESSION_ID_KEY;
/** Context key of the user id (a string). */
export const USER_ID_KEY: unique symbol = Symbol.for(USER_ID) as typeof USER_ID_KEY;
/** Context key of the metadata, as the JSON string the span attribute gets. */
export const METADATA_KEY: unique symbol = Symbol.for(METADATA) as typeof METADATA_KEY;
/** Context key of the tags (a frozen array of strings). */
export const TAGS_KEY: unique symbol = Symbol.for(TAG_TAGS) as typeof TAGS_KEY;
// The merged metadata as an object, so a nested usingAttributes merges without parsing JSON.
const METADATA_OBJECT_KEY = Symbol.for("spanloom.metadata.object");

/** Baggage keys the helpers write and the processor reads: the attribute names. */
export const BAGGAGE_SESSION_ID = SESSION_ID;
export const BAGGAGE_USER_ID = USER_ID;

/** What `usingAttributes` accepts. Every field is optional. */
export interface SpanloomAttributes {
  /** The session (conversation) id: a non-empty string. */
  sessionId?: string;
  /** The end user's id: a non-empty string. */
  userId?: string;
  /** Free-form metadata; stored on spans as the JSON string attribute `metadata`. Nested blocks merge. */
  metadata?: Record<string, unknown>;
  /** Tags, stored as the string-list attribute `tag.tags`. Nested blocks add up. */
  tags?: string[];
  /**
   * Also write the ids into W3C Baggage (default `false`), so that instrumented HTTP clients
   * send them, in the `baggage` header, to every host they call: a back end of yours, and any
   * third-party API alike. Leave it off for ids that must stay in this process.
   */
  propagate?: boolean;
}

/** What `usingSession` and `usingUser` accept besides the id. */
export interface PropagationOptions {
  /** Also write the id into W3C Baggage (default `false`); see `SpanloomAttributes.propagate`. */
  propagate?: boolean;
}

const KNOWN_OPTIONS = new Set(["sessionId", "userId", "metadata", "tags", "propagate"]);

function validId(value: unknown, what: string): value is string {
  if (typeof value === "string" && value.trim() !== "") return true;
  reject(
    `${what}:invalid`,
    `${what} must be a non-empty string, got ${describe(value)}`,
    typeof value === "string" ? Error : TypeError,
  );
  return false;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** JSON for attribute values: anything JSON cannot encode becomes a string, never an error. */
export function dumps(value: unknown): string {
  try {
    const text = JSON.stringify(value, (_key, item: unknown) =>
      typeof item === "bigint" ? item.toString() : item,
    );
    return text === undefined ? JSON.stringify(String(value)) : text;
  } catch {
    // circular references, throwing toJSON()
    return JSON.stringify(String(value));
  }
}

function checkFn(fn: unknown, helper: string): void {
  if (typeof fn !== "function") {
    // Nothing to run: the same TypeError calling it would have given, with a clearer message.
    throw new TypeError(`spanloom: ${helper} runs a function, got ${describe(fn)}`);
  }
}

let contextManagerSeen = false;

/** Run `fn` in `ctx`; warn once when no context manager is registered (the ids would be lost). */
function runIn<T>(ctx: Context, fn: () => T): T {
  if (!contextManagerSeen) {
    contextManagerSeen = context.with(ctx, () => context.active() === ctx);
    if (!contextManagerSeen) {
      warnOnce(
        "no-context-manager",
        "no OpenTelemetry context manager is registered, so spans cannot see the ids: " +
          "call register() (or start NodeSDK) first",
      );
    }
  }
  return context.with(ctx, fn);
}

function withBaggageEntries(ctx: Context, entries: Array<[string, string]>): Context {
  let baggage: Baggage = propagation.getBaggage(ctx) ?? propagation.createBaggage();
  for (const [key, value] of entries) {
    baggage = baggage.setEntry(key, { value });
  }
  return propagation.setBaggage(ctx, baggage);
}

/**
 * `ctx` plus the given attributes (validated; bad values are warned about once and left out).
 *
 * The building block of the helpers, for code that cannot wrap a function: a framework
 * middleware can `context.with(contextWithAttributes({ sessionId }), next)`.
 */
export function contextWithAttributes(
  attributes: SpanloomAttributes,
  ctx: Context = context.active(),
): Context {
  if (!isPlainObject(attributes)) {
    reject("attributes:invalid", `usingAttributes takes an object, got ${describe(attributes)}`);
    return ctx;
  }
  for (const key of Object.keys(attributes)) {
    if (!KNOWN_OPTIONS.has(key)) {
      reject(
        `attributes:unknown:${key}`,
        `unknown attribute option ${JSON.stringify(key)} (known: ${[...KNOWN_OPTIONS].join(", ")})`,
      );
    }
  }
  const { sessionId, userId, metadata, tags, propagate = false } = attributes;
  const baggage: Array<[string, string]> = [];
  if (sessionId != null && validId(sessionId, "sessionId")) {
    ctx = ctx.setValue(SESSION_ID_KEY, sessionId);
    baggage.push([BAGGAGE_SESSION_ID, sessionId]);
  }
  if (userId != null && validId(userId, "userId")) {
    ctx = ctx.setValue(USER_ID_KEY, userId);
    baggage.push([BAGGAGE_USER_ID, userId]);
  }
  if (metadata != null) {
    if (isPlainObject(metadata)) {
      const outer = ctx.getValue(METADATA_OBJECT_KEY) as Record<string, unknown> | undefined;
      const merged = outer ? { ...outer, ...metadata } : { ...metadata };
      ctx = ctx.setValue(METADATA_OBJECT_KEY, merged).setValue(METADATA_KEY, dumps(merged));
    } else {
      reject("metadata:invalid", `metadata must be a plain object, got ${describe(metadata)}`);
    }
  }
  if (tags != null) {
    if (Array.isArray(tags) && tags.every((tag) => typeof tag === "string")) {
      const outer = (ctx.getValue(TAGS_KEY) as readonly string[] | undefined) ?? [];
      ctx = ctx.setValue(TAGS_KEY, Object.freeze([...new Set([...outer, ...tags])]));
    } else {
      reject("tags:invalid", `tags must be an array of strings, got ${describe(tags)}`);
    }
  }
  if (propagate && baggage.length > 0) {
    ctx = withBaggageEntries(ctx, baggage);
  }
  return ctx;
}

function optionsAndFn<T>(
  optionsOrFn: PropagationOptions | (() => T),
  maybeFn: (() => T) | undefined,
  helper: string,
): [boolean, () => T] {
  if (typeof optionsOrFn === "function") return [false, optionsOrFn];
  checkFn(maybeFn, helper);
  if (!isPlainObject(optionsOrFn)) {
    reject(`${helper}:options`, `${helper} options must be an object, got ${describe(optionsOrFn)}`);
    return [false, maybeFn as () => T];
  }
  return [optionsOrFn.propagate === true, maybeFn as () => T];
}

function usingId<T>(
  key: symbol,
  baggageKey: string,
  what: string,
  id: string,
  propagate: boolean,
  fn: () => T,
): T {
  if (!validId(id, what)) return fn();
  const ctx = context.active().setValue(key, id);
  return runIn(propagate ? withBaggageEntries(ctx, [[baggageKey, id]]) : ctx, fn);
}

/**
 * Run `fn` with a session id: every span started inside carries `session.id` and
 * `gen_ai.conversation.id`. Returns what `fn` returns, a Promise included; the id holds across
 * its `await`s and timers. The id stays in this process unless `{ propagate: true }` is given,
 * which also puts it into W3C Baggage for outgoing requests:
 * `usingSession("conv-42", { propagate: true }, fn)`.
 */
export function usingSession<T>(sessionId: string, fn: () => T): T;
export function usingSession<T>(sessionId: string, options: PropagationOptions, fn: () => T): T;
export function usingSession<T>(
  sessionId: string,
  optionsOrFn: PropagationOptions | (() => T),
  maybeFn?: () => T,
): T {
  const [propagate, fn] = optionsAndFn(optionsOrFn, maybeFn, "usingSession");
  return usingId(SESSION_ID_KEY, BAGGAGE_SESSION_ID, "sessionId", sessionId, propagate, fn);
}

/** Run `fn` with a user id: every span started inside carries `user.id`. Same forms as `usingSession`. */
export function usingUser<T>(userId: string, fn: () => T): T;
export function usingUser<T>(userId: string, options: PropagationOptions, fn: () => T): T;
export function usingUser<T>(
  userId: string,
  optionsOrFn: PropagationOptions | (() => T),
  maybeFn?: () => T,
): T {
  const [propagate, fn] = optionsAndFn(optionsOrFn, maybeFn, "usingUser");
  return usingId(USER_ID_KEY, BAGGAGE_USER_ID, "userId", userId, propagate, fn);
}

/**
 * Run `fn` with any of session id, user id, metadata and tags set. Metadata merges with an
 * enclosing block's (inner keys win) and tags add up. `propagate: true` also puts the ids (never
 * metadata or tags) into W3C Baggage for outgoing requests.
 */
export function usingAttributes<T>(attributes: SpanloomAttributes, fn: () => T): T {
  checkFn(fn, "usingAttributes");
  return runIn(contextWithAttributes(attributes), fn);
}

/** The span attributes a context holds (its own keys only, not baggage). */
export function getAttributesFromContext(ctx: Context = context.active()): Record<string, string | string[]> {
  const attributes: Record<string, string | string[]> = {};
  const sessionId = ctx.getValue(SESSION_ID_KEY);
  if (typeof sessionId === "string") {
    attributes[SESSION_ID] = sessionId;
    attributes[GEN_AI_CONVERSATION_ID] = sessionId;
  }
  const userId = ctx.getValue(USER_ID_KEY);
  if (typeof userId === "string") attributes[USER_ID] = userId;
  const metadata = ctx.getValue(METADATA_KEY);
  if (typeof metadata === "string") attributes[METADATA] = metadata;
  const tags = ctx.getValue(TAGS_KEY);
  if (Array.isArray(tags)) attributes[TAG_TAGS] = [...tags];
  return attributes;
}

/**
 * The W3C `traceparent` and `baggage` headers for `ctx` (default: the active context), added
 * to `headers`. For `fetch` calls that no HTTP instrumentation covers, and for browsers.
 * Needs the W3C propagators, which `register()` installs.
 */
export function propagationHeaders(
  headers: Record<string, string> = {},
  ctx: Context = context.active(),
): Record<string, string> {
  propagation.inject(ctx, headers);
  return headers;
}
