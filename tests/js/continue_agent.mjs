// A two-turn tool conversation, the way Continue's agent mode runs one, through Continue's own
// transport (@continuedev/openai-adapters):
//
//   node continue_agent.mjs --api-base URL --model ID [--no-stream] [--api-key KEY]
//
// Turn 1 offers a read_file tool; the model thinks and calls it. Turn 2 sends the history back
// the way Continue's `openai` provider does (assistant turn with content and tool_calls, no
// reasoning; then the tool's answer) and reads the final answer. Chunks are read with
// Continue's rule: one field per chunk, content first, then tool_calls, then
// reasoning_content / reasoning. Prints one JSON object on stdout; on failure prints the turn
// and the error on stderr and exits 1.

import { parseArgs } from "node:util";

import { constructLlmApi } from "@continuedev/openai-adapters";

const { values: args } = parseArgs({
  options: {
    "api-base": { type: "string" },
    model: { type: "string" },
    "api-key": { type: "string", default: "continue-client-key" },
    "no-stream": { type: "boolean", default: false },
    "timeout-ms": { type: "string", default: "30000" },
  },
  strict: true,
});

const api = constructLlmApi({
  provider: "openai",
  apiKey: args["api-key"],
  apiBase: args["api-base"],
});
const TOOL_RESULT = "trayproxy routes model ids to providers.";
const tools = [
  {
    type: "function",
    function: {
      name: "read_file",
      description: "Read a file from the workspace",
      parameters: {
        type: "object",
        properties: { path: { type: "string" } },
        required: ["path"],
      },
    },
  },
];
const messages = [
  { role: "system", content: "You are a coding agent." },
  { role: "user", content: "What does README.md say?" },
];

function body() {
  return {
    model: args.model,
    messages,
    max_tokens: 4096,
    tools,
    parallel_tool_calls: false,
  };
}

async function streamedTurn() {
  const turn = { content: "", reasoning: "", tool_calls: [], fields: [], finish_reason: null };
  for await (const chunk of api.chatCompletionStream(
    { ...body(), stream: true },
    AbortSignal.timeout(Number(args["timeout-ms"])),
  )) {
    const choice = chunk.choices?.[0];
    const delta = choice?.delta;
    if (choice?.finish_reason) turn.finish_reason = choice.finish_reason;
    if (!delta) continue;
    if (delta.content) {
      turn.content += delta.content;
      turn.fields.push("content");
    } else if (delta.tool_calls) {
      for (const call of delta.tool_calls) {
        const slot = (turn.tool_calls[call.index ?? 0] ??= {
          id: "",
          type: "function",
          function: { name: "", arguments: "" },
        });
        if (call.id) slot.id = call.id;
        if (call.function?.name) slot.function.name += call.function.name;
        if (call.function?.arguments) slot.function.arguments += call.function.arguments;
      }
      turn.fields.push("tool_calls");
    } else if (delta.reasoning_content || delta.reasoning) {
      turn.reasoning += delta.reasoning_content || delta.reasoning;
      turn.fields.push("reasoning");
    }
  }
  return turn;
}

async function plainTurn() {
  const completion = await api.chatCompletionNonStream(
    body(),
    AbortSignal.timeout(Number(args["timeout-ms"])),
  );
  const message = completion.choices?.[0]?.message ?? {};
  return {
    content: message.content ?? "",
    reasoning: message.reasoning_content ?? message.reasoning ?? "",
    tool_calls: message.tool_calls ?? [],
    fields: [],
    finish_reason: completion.choices?.[0]?.finish_reason ?? null,
  };
}

const result = { turns: [] };
let step = "turn 1";
try {
  const first = args["no-stream"] ? await plainTurn() : await streamedTurn();
  result.turns.push(first);
  if (!first.tool_calls.length) throw new Error("the model called no tool in turn 1");
  // What Continue sends back: no reasoning on the assistant turn.
  messages.push({ role: "assistant", content: first.content, tool_calls: first.tool_calls });
  for (const call of first.tool_calls) {
    messages.push({ role: "tool", tool_call_id: call.id, content: TOOL_RESULT });
  }
  step = "turn 2";
  result.turns.push(args["no-stream"] ? await plainTurn() : await streamedTurn());
} catch (err) {
  const detail = { step, message: err?.message ?? String(err), status: err?.status };
  process.stderr.write(`continue_agent.mjs failed in ${step}: ${JSON.stringify(detail)}\n`);
  process.exit(1);
}
result.tool_result = TOOL_RESULT;
process.stdout.write(`${JSON.stringify(result)}\n`);
