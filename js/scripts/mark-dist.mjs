// Marks each build's module format, so Node reads dist/esm as ESM and dist/cjs as CommonJS
// whatever the package's own "type" says.
import { writeFileSync } from "node:fs";

for (const [dir, type] of [
  ["esm", "module"],
  ["cjs", "commonjs"],
]) {
  writeFileSync(new URL(`../dist/${dir}/package.json`, import.meta.url), `${JSON.stringify({ type })}\n`);
}
