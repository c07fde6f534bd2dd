// Token counts of each file named on the command line, by two real tokenizers:
// {"path": [cl100k_base, o200k_base, characters]}.
import fs from "fs";
import { encode as cl100k } from "gpt-tokenizer/encoding/cl100k_base";
import { encode as o200k } from "gpt-tokenizer/encoding/o200k_base";

const out = {};
for (const path of process.argv.slice(2)) {
  const text = fs.readFileSync(path, "utf8");
  out[path] = [cl100k(text).length, o200k(text).length, text.length];
}
console.log(JSON.stringify(out));
