/**
 * Reporting bad input and internal failures without breaking the host application.
 *
 * Tracing runs inside other people's code: bad input to a helper costs the ids, never the
 * call. Each kind of problem is reported once per process, so a hot path cannot flood logs.
 * `SPANLOOM_STRICT=1` turns bad input into exceptions instead (tests use it).
 */

const reported = new Set<string>();

/** True when `SPANLOOM_STRICT` is set to 1/true/yes/on. */
export function strictMode(): boolean {
  const value = typeof process === "undefined" ? "" : (process.env?.SPANLOOM_STRICT ?? "");
  return ["1", "true", "yes", "on"].includes(value.trim().toLowerCase());
}

/**
 * Report bad input: throws `error` under SPANLOOM_STRICT=1, else one console warning per `site`.
 */
export function reject(site: string, message: string, error: ErrorConstructor = TypeError): void {
  if (strictMode()) {
    throw new error(`spanloom: ${message}`);
  }
  if (reported.has(site)) return;
  reported.add(site);
  console.warn(`spanloom: ${message}; ignored (warned once)`);
}

/** A console warning, once per `site`. */
export function warnOnce(site: string, message: string): void {
  if (reported.has(site)) return;
  reported.add(site);
  console.warn(`spanloom: ${message} (warned once)`);
}

/** Log an internal failure once per `site`; tracing skips the call, the host goes on. */
export function logFailure(site: string, failure: unknown): void {
  if (reported.has(`failure:${site}`)) return;
  reported.add(`failure:${site}`);
  console.warn(`spanloom: ${site} failed; tracing skipped this call (logged once)`, failure);
}

/** A short, safe description of a bad value for a message. */
export function describe(value: unknown): string {
  if (value === null) return "null";
  if (typeof value === "string")
    return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}...` : value);
  if (typeof value === "object") return Array.isArray(value) ? "an array" : "an object";
  return `${typeof value} ${String(value).slice(0, 80)}`;
}
