/**
 * Where spanloom sends things, from the arguments or the environment. No dependency, so the
 * browser build of the feedback helpers can load it.
 */

/** Where `spanloom serve` listens by default. */
export const DEFAULT_ENDPOINT = "http://127.0.0.1:4318/v1/traces";
const TRACES_PATH = "/v1/traces";

/** An environment variable, trimmed; "" where there is none (a browser). */
export function env(name: string): string {
  return (typeof process === "undefined" ? "" : (process.env?.[name] ?? "")).trim();
}

/** Where spans go: the argument, else SPANLOOM_ENDPOINT, else the OTLP variables, else local. */
export function resolveEndpoint(endpoint?: string): string {
  if (endpoint) return endpoint;
  for (const name of ["SPANLOOM_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]) {
    const value = env(name);
    if (value) return value;
  }
  const base = env("OTEL_EXPORTER_OTLP_ENDPOINT");
  // The generic variable names the collector; the traces path is appended, per the spec.
  if (base) return `${base.replace(/\/+$/, "")}${TRACES_PATH}`;
  return DEFAULT_ENDPOINT;
}

/** The export headers: `headers`, plus `Authorization: Bearer $SPANLOOM_API_KEY` unless one is given. */
export function resolveHeaders(headers: Record<string, string> = {}): Record<string, string> {
  const resolved = { ...headers };
  const apiKey = env("SPANLOOM_API_KEY");
  if (apiKey && !Object.keys(resolved).some((name) => name.toLowerCase() === "authorization")) {
    resolved.Authorization = `Bearer ${apiKey}`;
  }
  return resolved;
}

/**
 * The spanloom server behind a traces endpoint: the URL without its `/v1/traces` (a server
 * mounted under a path keeps it), query and fragment. Any other URL is taken as the server's own.
 */
export function serverUrl(endpoint: string): string {
  const url = new URL(endpoint.trim());
  let path = url.pathname.replace(/\/+$/, "");
  if (path.endsWith(TRACES_PATH)) path = path.slice(0, -TRACES_PATH.length);
  return `${url.origin}${path.replace(/\/+$/, "")}`;
}
