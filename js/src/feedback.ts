/**
 * logFeedback() and endSession(): what the end user thought of a turn or a conversation, and
 * the end of a conversation, sent to the spanloom server from Node or from a browser.
 *
 * They need no span: the turn is named by its trace id (send it to the front end with the
 * answer: `currentTraceId()` on the server side), the conversation by its session id. The server
 * is the one `register()` was given, else `configureFeedback()`'s, else the environment's
 * (SPANLOOM_ENDPOINT...), else http://127.0.0.1:4318; per-call options win. Requests use the
 * global `fetch`, are retried with backoff on network errors, timeouts, 408, 429 and 5xx for up
 * to `retryForMs`, and carry an id so that a retry never counts twice.
 *
 * Nothing here throws into the host or rejects: bad input gives a console warning (an exception
 * under SPANLOOM_STRICT=1), and the returned promise resolves to what happened. This module
 * imports nothing but its two neighbours, so a browser can load `spanloom/feedback` alone.
 */

import { env, resolveEndpoint, resolveHeaders, serverUrl } from "./endpoint.js";
import { describe, logFailure, reject, warnOnce } from "./warn.js";

/** Where feedback goes and how it authenticates. Every field is optional. */
export interface FeedbackDestination {
  /** The spanloom server (`http://127.0.0.1:4318`) or its traces endpoint (`.../v1/traces`). */
  url?: string;
  /** Extra headers, such as `Authorization`. */
  headers?: Record<string, string>;
  /** A key with the ingest role, sent as `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** The project of the turn or session (default: register()'s, else SPANLOOM_PROJECT, else the server's choice). */
  project?: string;
  /** How long to keep retrying a request the server did not answer (default 30,000 ms). */
  retryForMs?: number;
}

/** An end user's feedback on a turn (`traceId`) or a whole conversation (`sessionId`). */
export interface Feedback extends FeedbackDestination {
  /** 1 for a thumbs-up, -1 for a thumbs-down, or any number (at least 0.5 counts as positive). */
  score?: number;
  /** "helpful", "wrong answer"...: a score, a label or both are needed. */
  label?: string;
  /** What the user wrote. */
  comment?: string;
  /** The turn: its 32-hex-digit trace id. */
  traceId?: string;
  /** The conversation. */
  sessionId?: string;
  /** Who gave it. */
  userId?: string;
  /** Your id for it: the same id again replaces the earlier feedback. Default: a random one. */
  id?: string;
}

const MAX_ABS_SCORE = 1_000_000;
const MAX_TEXT = 200; // an id, a label, a project
const MAX_ID = 256; // a session or user id
const MAX_COMMENT = 10_000; // longer comments are cut (the server cuts them too)
const MAX_PENDING = 1_000;
const REQUEST_TIMEOUT_MS = 10_000;
const DEFAULT_RETRY_FOR_MS = 30_000;
const MIN_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 10_000;
const RETRIED_STATUSES = new Set([408, 429, 500, 502, 503, 504]);
const DESTINATION_KEYS = ["url", "headers", "apiKey", "project", "retryForMs"];
const FEEDBACK_KEYS = new Set([
  ...DESTINATION_KEYS,
  "score",
  "label",
  "comment",
  "traceId",
  "sessionId",
  "userId",
  "id",
]);

let configured: FeedbackDestination = {};
const pending = new Set<Promise<unknown>>();

/**
 * Set where `logFeedback` and `endSession` send to by default (`register()` calls it with its
 * endpoint, headers and project). In a browser, call it once with the server's URL.
 */
export function configureFeedback(destination: FeedbackDestination): void {
  if (!isPlainObject(destination)) {
    reject("feedback:configure", `configureFeedback takes an object, got ${describe(destination)}`);
    return;
  }
  configured = { ...destination };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

interface Resolved {
  base: string;
  headers: Record<string, string>;
  project: string | undefined;
  retryForMs: number;
}

function resolve(options: FeedbackDestination): Resolved {
  const chosen = { ...configured, ...dropUndefined(options) };
  const headers = resolveHeaders({ ...(chosen.headers ?? {}) });
  if (chosen.apiKey) headers.Authorization = `Bearer ${chosen.apiKey}`;
  return {
    base: serverUrl(chosen.url || resolveEndpoint()),
    headers,
    project: chosen.project || env("SPANLOOM_PROJECT") || undefined,
    retryForMs: chosen.retryForMs ?? DEFAULT_RETRY_FOR_MS,
  };
}

function dropUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, item]) => item !== undefined)) as Partial<T>;
}

/** `value` trimmed; undefined when absent (and not `required`); null after reporting it. */
function text(value: unknown, what: string, limit: number, required = false): string | undefined | null {
  if ((value === undefined || value === null) && !required) return undefined;
  if (typeof value !== "string" || value.trim() === "") {
    reject(
      `feedback:${what}`,
      `${what} must be a non-empty string, got ${describe(value)}`,
      typeof value === "string" ? Error : TypeError,
    );
    return null;
  }
  if (value.length > limit) {
    reject(
      `feedback:${what}:length`,
      `${what} must be at most ${limit} characters, got ${value.length}`,
      Error,
    );
    return null;
  }
  return value.trim();
}

function randomId(): string {
  const crypto = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto;
  if (typeof crypto?.randomUUID === "function") return crypto.randomUUID().replace(/-/g, "");
  // Node 18 without the global crypto, an insecure browser context: ids need to be unique, not secret.
  let id = Date.now().toString(16);
  while (id.length < 32) id += Math.floor(Math.random() * 0x1_0000_0000).toString(16);
  return id.slice(0, 32);
}

/** The JSON item for POST /api/feedback, or undefined after reporting what is wrong. */
function feedbackItem(feedback: Feedback): Record<string, unknown> | undefined {
  if (!isPlainObject(feedback)) {
    reject("feedback:invalid", `logFeedback takes an object, got ${describe(feedback)}`);
    return undefined;
  }
  for (const key of Object.keys(feedback)) {
    if (!FEEDBACK_KEYS.has(key)) {
      reject(
        `feedback:unknown:${key}`,
        `unknown feedback option ${JSON.stringify(key)} (known: ${[...FEEDBACK_KEYS].join(", ")})`,
      );
      return undefined;
    }
  }
  const { score, label, comment, traceId, sessionId } = feedback;
  if ((traceId === undefined) === (sessionId === undefined)) {
    reject(
      "feedback:target",
      "logFeedback needs traceId (a turn) or sessionId (the conversation), one of them",
      Error,
    );
    return undefined;
  }
  if (score === undefined && label === undefined) {
    reject(
      "feedback:empty",
      "logFeedback needs a score (1 for a thumbs-up, -1 for a thumbs-down) or a label",
      Error,
    );
    return undefined;
  }
  const item: Record<string, unknown> = {};
  if (score !== undefined) {
    if (typeof score !== "number" || !Number.isFinite(score)) {
      reject("feedback:score", `score must be a finite number (1 or -1 for thumbs), got ${describe(score)}`);
      return undefined;
    }
    if (Math.abs(score) > MAX_ABS_SCORE) {
      reject("feedback:score:range", `score must be within ±1,000,000, got ${score}`, Error);
      return undefined;
    }
    item.score = score;
  }
  if (traceId !== undefined) {
    if (typeof traceId !== "string" || !/^[0-9a-f]{32}$/i.test(traceId) || /^0+$/.test(traceId)) {
      reject("feedback:traceId", `traceId must be 32 hex digits, got ${describe(traceId)}`);
      return undefined;
    }
    item.trace_id = traceId.toLowerCase();
  }
  const texts: Array<[string, string, number]> = [
    ["label", "label", MAX_TEXT],
    ["sessionId", "session_id", MAX_ID],
    ["userId", "user_id", MAX_ID],
    ["id", "id", MAX_TEXT],
    ["project", "project", MAX_TEXT],
  ];
  for (const [option, field, limit] of texts) {
    const value = text(feedback[option as keyof Feedback], option, limit);
    if (value === null) return undefined;
    if (value !== undefined) item[field] = value;
  }
  if (comment !== undefined && comment !== null) {
    if (typeof comment !== "string") {
      reject("feedback:comment", `comment must be a string, got ${describe(comment)}`);
      return undefined;
    }
    item.comment = comment.slice(0, MAX_COMMENT);
  }
  // An id of our own when none is given: a retried request replaces, never doubles, the feedback.
  item.id ??= randomId();
  return item;
}

type Outcome = "stored" | "refused" | "gave up";

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function retryAfterMs(response: Response): number | undefined {
  const header = response.headers.get("retry-after");
  const seconds = header === null || header.trim() === "" ? Number.NaN : Number(header);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : undefined;
}

async function errorMessage(response: Response): Promise<string> {
  try {
    const body = (await response.json()) as {
      error?: { message?: string };
      rejected?: Array<{ reason?: string }>;
    };
    return body.rejected?.[0]?.reason ?? body.error?.message ?? response.statusText;
  } catch {
    return response.statusText;
  }
}

/** POST with retries until an answer other than "try again", or `retryForMs` has passed. */
async function send(url: string, init: RequestInit, what: string, retryForMs: number): Promise<Outcome> {
  const deadline = Date.now() + retryForMs;
  let backoff = MIN_BACKOFF_MS;
  for (;;) {
    let wait = backoff;
    const timeoutMs = Math.max(1, Math.min(REQUEST_TIMEOUT_MS, deadline - Date.now()));
    try {
      const response = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
      if (!RETRIED_STATUSES.has(response.status)) {
        if (response.status === 200) {
          await response.body?.cancel();
          return "stored";
        }
        // 207/422: the body says why; 400/401/403/404/413: the request itself was refused.
        warnOnce(
          `feedback:refused:${response.status}`,
          `${url} refused ${what}: ${await errorMessage(response)}`,
        );
        return "refused";
      }
      await response.body?.cancel();
      wait = retryAfterMs(response) ?? backoff;
      warnOnce(`feedback:status:${response.status}`, `${url} answered ${response.status}; retrying`);
    } catch (error) {
      warnOnce("feedback:unreachable", `cannot reach ${url} (${describe(String(error))}); retrying`);
    }
    wait = Math.min(wait, MAX_BACKOFF_MS);
    if (Date.now() + wait >= deadline) {
      warnOnce("feedback:gave-up", `gave up sending ${what} to ${url} after ${retryForMs} ms`);
      return "gave up";
    }
    await sleep(wait);
    backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
  }
}

function track<T>(work: Promise<T>, fallback: T): Promise<T> {
  const settled = work.catch((failure: unknown) => {
    logFailure("feedback", failure);
    return fallback;
  });
  pending.add(settled);
  void settled.finally(() => pending.delete(settled));
  return settled;
}

function hasRoom(what: string): boolean {
  if (pending.size < MAX_PENDING) return true;
  warnOnce("feedback:full", `${MAX_PENDING} feedback requests are waiting for the server; dropped ${what}`);
  return false;
}

/**
 * Send an end user's feedback on a turn (`traceId`) or a conversation (`sessionId`). Resolves
 * to the feedback's id once the server stored it, or `undefined` when it was not (bad input,
 * refused, or the server stayed unreachable for `retryForMs`); never rejects. It may arrive
 * before the turn's spans: it counts once they do.
 */
export function logFeedback(feedback: Feedback): Promise<string | undefined> {
  const item = feedbackItem(feedback);
  if (item === undefined) return Promise.resolve(undefined);
  const what = `feedback ${JSON.stringify(item.id)}`;
  try {
    const destination = resolve(feedback);
    if (item.project === undefined && destination.project !== undefined) item.project = destination.project;
    if (!hasRoom(what)) return Promise.resolve(undefined);
    const init = {
      method: "POST",
      headers: { ...destination.headers, "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify(item),
    };
    const url = `${destination.base}/api/feedback`;
    const sent = send(url, init, what, destination.retryForMs).then((outcome) =>
      outcome === "stored" ? (item.id as string) : undefined,
    );
    return track(sent, undefined);
  } catch (failure) {
    logFailure("logFeedback", failure);
    return Promise.resolve(undefined);
  }
}

/**
 * Mark the conversation `sessionId` ended now (the user closed the chat, the task is done): its
 * session evaluators may run, and it shows as ended until a later turn reopens it. Resolves to
 * `true` once the server recorded it; never rejects.
 */
export function endSession(sessionId: string, options: FeedbackDestination = {}): Promise<boolean> {
  if (text(sessionId, "sessionId", MAX_ID, true) == null) return Promise.resolve(false);
  if (!isPlainObject(options)) {
    reject("endSession:options", `endSession options must be an object, got ${describe(options)}`);
    return Promise.resolve(false);
  }
  for (const key of Object.keys(options)) {
    if (!DESTINATION_KEYS.includes(key)) {
      reject(
        `endSession:unknown:${key}`,
        `unknown endSession option ${JSON.stringify(key)} (known: ${DESTINATION_KEYS.join(", ")})`,
      );
      return Promise.resolve(false);
    }
  }
  if (text(options.project, "project", MAX_TEXT) === null) return Promise.resolve(false);
  const what = `the end of session ${JSON.stringify(sessionId)}`;
  try {
    const destination = resolve(options);
    if (!hasRoom(what)) return Promise.resolve(false);
    const query = destination.project ? `?${new URLSearchParams({ project: destination.project })}` : "";
    const url = `${destination.base}/api/sessions/${encodeURIComponent(sessionId)}/end${query}`;
    const init = { method: "POST", headers: { ...destination.headers, accept: "application/json" } };
    return track(
      send(url, init, what, destination.retryForMs).then((outcome) => outcome === "stored"),
      false,
    );
  } catch (failure) {
    logFailure("endSession", failure);
    return Promise.resolve(false);
  }
}

/**
 * Wait until every feedback and session end sent so far is settled, at most `timeoutMs`;
 * resolves to `true` when none is left. Call it before a short script exits.
 */
export async function flushFeedback(timeoutMs = 5_000): Promise<boolean> {
  if (pending.size === 0) return true;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  const settled = (async () => {
    // Feedback sent while waiting is waited for too.
    while (pending.size > 0) await Promise.allSettled([...pending]);
    return true;
  })();
  try {
    return await Promise.race([settled, timedOut]);
  } finally {
    clearTimeout(timer);
  }
}
