// A two-turn tool conversation through Anthropic's own npm SDK (@anthropic-ai/sdk), the way
// Claude Code runs one: streamed, with thinking, a read_file tool, the assistant's blocks sent
// back as received, then the tool's result.
//
//   node anthropic_agent.mjs --base-url URL --model ID [--api-key KEY]
//
// Prints one JSON object on stdout: the first turn's block types and tool call, and the final
// text. On failure prints the error on stderr and exits 1.

import { parseArgs } from "node:util";

import Anthropic from "@anthropic-ai/sdk";

const { values: args } = parseArgs({
  options: {
    "base-url": { type: "string" },
    model: { type: "string" },
    "api-key": { type: "string", default: "claude-client-key" },
  },
  strict: true,
});

const client = new Anthropic({ baseURL: args["base-url"], apiKey: args["api-key"], maxRetries: 0 });
const tools = [
  {
    name: "read_file",
    description: "Read a file from the workspace",
    input_schema: {
      type: "object",
      properties: { path: { type: "string" } },
      required: ["path"],
    },
  },
];
const TOOL_RESULT = "trayproxy routes model ids to providers.";

try {
  const messages = [{ role: "user", content: "What does README.md say?" }];
  const ask = {
    model: args.model,
    max_tokens: 4096,
    tools,
    thinking: { type: "enabled", budget_tokens: 2048 },
  };
  const first = await client.messages.stream({ ...ask, messages }).finalMessage();
  const call = first.content.find((b) => b.type === "tool_use");
  if (!call) throw new Error("no tool_use block: " + JSON.stringify(first.content));
  messages.push({ role: "assistant", content: first.content });
  messages.push({
    role: "user",
    content: [{ type: "tool_result", tool_use_id: call.id, content: TOOL_RESULT }],
  });
  const second = await client.messages.stream({ ...ask, messages }).finalMessage();
  const text = second.content.filter((b) => b.type === "text").map((b) => b.text).join("");
  console.log(
    JSON.stringify({
      first: first.content.map((b) => b.type),
      tool: { id: call.id, name: call.name, input: call.input },
      stop: [first.stop_reason, second.stop_reason],
      usage: [first.usage.input_tokens, second.usage.output_tokens],
      text,
    }),
  );
} catch (err) {
  console.error(String(err && err.stack ? err.stack : err));
  process.exit(1);
}
