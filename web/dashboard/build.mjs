// Builds the dashboard into services/query/internal/dashboard/dist, which the
// query service embeds. The output depends only on the sources and the
// versions pinned in package-lock.json, so `npm ci && npm run build` gives the
// same bytes on every machine (CI checks this).
import { build } from "esbuild";
import { copyFile, mkdir, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "..", "services", "query", "internal", "dashboard", "dist");

await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });
await build({
  entryPoints: [join(here, "src", "main.js")],
  bundle: true,
  minify: true,
  format: "esm",
  target: ["es2020"],
  legalComments: "none",
  outfile: join(out, "app.js"),
  logLevel: "warning",
});
for (const f of ["index.html", "style.css"]) {
  await copyFile(join(here, "src", f), join(out, f));
}
console.log("dashboard built into", out);
