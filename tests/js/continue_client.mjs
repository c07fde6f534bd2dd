// Drive an OpenAI-compatible server with Continue's own transport, @continuedev/openai-adapters.
//
//   node continue_client.mjs --api-base URL --model ID --embed-model ID [--api-key KEY]
//                            [--timeout-ms N]
//
// Calls, in order: chatCompletionStream, chatCompletionNonStream, completionStream, embed, rerank,
// list,
// with bodies shaped like the ones Continue's IDE extension sends (see /work/shared/CLIENTS.md).
// Prints one JSON object with the results on stdout and exits 0; on failure prints the step and
// the error on stderr and exits 1.

import { parseArgs } from "node:util";

import { constructLlmApi } from "@continuedev/openai-adapters";

const { values: args } = parseArgs({
  options: {
    "api-base": { type: "string" },
    model: { type: "string" },
    "embed-model": { type: "string" },
    "api-key": { type: "string", default: "continue-client-key" },
    "timeout-ms": { type: "string", default: "30000" },
  },
  strict: true,
});

for (const name of ["api-base", "model", "embed-model"]) {
  if (!args[name]) {
    process.stderr.write(`continue_client.mjs: --${name} is required\n`);
    process.exit(2);
  }
}

const timeoutMs = Number(args["timeout-ms"]);
const api = constructLlmApi({
  provider: "openai",
  apiKey: args["api-key"],
  apiBase: args["api-base"],
});
if (!api) {
  process.stderr.write("constructLlmApi returned nothing for provider openai\n");
  process.exit(1);
}

const signal = () => AbortSignal.timeout(timeoutMs);

const messages = [
  { role: "system", content: "You are a helpful coding assistant." },
  { role: "user", content: "Say hello." },
];

let step = "start";
const result = {};

async function main() {
  // 1. Chat, streamed: what the Continue chat panel does.
  step = "chatCompletionStream";
  const pieces = [];
  let usage = null;
  let usageChunk = false;
  let chunks = 0;
  let finishReason = null;
  for await (const chunk of api.chatCompletionStream(
    {
      model: args.model,
      messages,
      stream: true,
      max_tokens: 4096,
      temperature: 0.7,
    },
    signal(),
  )) {
    chunks += 1;
    const choice = chunk.choices?.[0];
    if (choice?.delta?.content) pieces.push(choice.delta.content);
    if (choice?.finish_reason) finishReason = choice.finish_reason;
    if (chunk.usage) {
      usage = chunk.usage;
      usageChunk = true;
    }
  }
  result.chat_stream = {
    content: pieces.join(""),
    pieces,
    chunks,
    finish_reason: finishReason,
    usage_chunk: usageChunk,
    usage,
  };

  // 2. Chat, not streamed (Continue uses it for titles and some edits).
  step = "chatCompletionNonStream";
  const completion = await api.chatCompletionNonStream(
    { model: args.model, messages, max_tokens: 4096 },
    signal(),
  );
  result.chat = {
    content: completion.choices?.[0]?.message?.content ?? null,
    finish_reason: completion.choices?.[0]?.finish_reason ?? null,
    model: completion.model,
    usage: completion.usage ?? null,
  };

  // 3. Legacy completions, streamed: tab autocomplete for non-gpt/o ids.
  step = "completionStream";
  const texts = [];
  for await (const chunk of api.completionStream(
    {
      model: args.model,
      prompt: "def fibonacci(n):\n    ",
      stream: true,
      max_tokens: 256,
      temperature: 0.01,
      stop: ["\n\n", "\ndef "],
    },
    signal(),
  )) {
    const text = chunk.choices?.[0]?.text;
    if (text) texts.push(text);
  }
  result.completion_stream = { text: texts.join(""), pieces: texts };

  // 4. Embeddings: the SDK adds encoding_format "base64" and decodes the answer itself.
  step = "embed";
  const embedded = await api.embed({
    model: args["embed-model"],
    input: ["def fibonacci(n):", "hello world"],
  });
  result.embed = {
    model: embedded.model,
    vectors: embedded.data.map((d) => Array.from(d.embedding)),
    usage: embedded.usage ?? null,
  };

  // 5. Rerank (Continue's reranker role; the embed model id stands in for a reranker here).
  step = "rerank";
  const reranked = await api.rerank({
    model: args["embed-model"],
    query: "fibonacci function",
    documents: ["hello world", "def fibonacci(n): a fibonacci function"],
  });
  result.rerank = reranked;

  // 6. Models list (model: AUTODETECT, the "add model" picker).
  step = "list";
  const models = await api.list();
  result.models = models.map((m) => m.id);
}

try {
  await main();
} catch (err) {
  const detail = {
    step,
    name: err?.name,
    message: err?.message ?? String(err),
    status: err?.status,
    error: err?.error,
    cause: err?.cause ? String(err.cause?.message ?? err.cause) : undefined,
  };
  process.stderr.write(`continue_client.mjs failed in ${step}: ${JSON.stringify(detail)}\n`);
  if (err?.stack) process.stderr.write(`${err.stack}\n`);
  process.exit(1);
}
process.stdout.write(`${JSON.stringify(result)}\n`);
