// Validates a Continue config.yaml read from stdin with Continue's own parser, the npm
// package @continuedev/config-yaml. Prints {"models": [...], "errors": [...]} and exits 1
// when the file does not parse or has errors.
import { parseConfigYaml, validateConfigYaml } from "@continuedev/config-yaml";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const text = Buffer.concat(chunks).toString("utf8");
try {
  const config = parseConfigYaml(text);
  const errors = validateConfigYaml(config).map((e) => ({ fatal: e.fatal, message: e.message }));
  console.log(JSON.stringify({ models: config.models ?? [], errors }));
  process.exit(errors.some((e) => e.fatal) ? 1 : 0);
} catch (err) {
  console.error(String(err && err.stack ? err.stack : err));
  process.exit(1);
}
