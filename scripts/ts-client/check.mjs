// A client built on the MCP TypeScript SDK 1.x, as mcp-remote, editors and the Inspector are: it makes the
// calls of a plan against a QMailing MCP server and checks that the SDK reads every result.
//
//   node check.mjs PLAN.json      (run by scripts/mcp-ts-client, which installs the pinned SDK)
//
// PLAN.json: {"url": "<base>/mcp", "tokens": {"<name>": "qm_live_…", …},
//             "calls": [{"token": "<name>", "tool": "qmailing_…", "arguments": {…}, "expect": "ok" | "<code>"}, …]}
//
// One SDK Client per token: it connects (streamable HTTP, the token as a Bearer header) and lists the
// tools, which is when the SDK caches each tool's output-schema validator, as a real client does. Each
// call then goes through client.callTool, which validates structuredContent against that schema (and, for
// a tool the token was not shown, calls it all the same). A call fails the check if the SDK throws, if
// the result is not what `expect` says, if an isError result carries structuredContent, or if its text is
// not one line of message followed by the problem object as JSON. Prints a JSON summary on stdout; exits 1
// on any failure, listing them on stderr.
import { readFileSync } from "node:fs";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const plan = JSON.parse(readFileSync(process.argv[2], "utf8"));
const sdk = JSON.parse(readFileSync(new URL("./node_modules/@modelcontextprotocol/sdk/package.json", import.meta.url)));
const clients = new Map();
const listed = {};
const failures = [];
const results = [];

async function clientFor(name) {
  if (!clients.has(name)) {
    const client = new Client({ name: "qmailing-ts-client-check", version: "1.0.0" });
    const transport = new StreamableHTTPClientTransport(new URL(plan.url), {
      requestInit: { headers: { Authorization: `Bearer ${plan.tokens[name]}` } },
    });
    await client.connect(transport);
    const { tools, nextCursor } = await client.listTools();
    listed[name] = { tools: tools.length, nextCursor: nextCursor ?? null, protocolVersion: transport.protocolVersion ?? null };
    clients.set(name, client);
  }
  return clients.get(name);
}

// The problem object of an isError result, or a reason it is not readable as promised.
function problemOf(result) {
  if ("structuredContent" in result) return { reason: "an isError result carries structuredContent" };
  const texts = result.content.filter((block) => block.type === "text");
  if (texts.length !== 1) return { reason: `${texts.length} text blocks, not 1` };
  const lines = texts[0].text.split("\n");
  if (lines.length !== 2) return { reason: `${lines.length} lines of text, not 2 (message, problem JSON)` };
  let problem;
  try {
    problem = JSON.parse(lines[1]);
  } catch (error) {
    return { reason: `the second line is not JSON: ${error.message}` };
  }
  if (!lines[0] || lines[0] !== String(problem.detail).split(/\s+/).filter(Boolean).join(" ")) {
    return { reason: "the first line is not the problem's detail", problem };
  }
  return { problem };
}

for (const call of plan.calls) {
  const label = `${call.tool} (${call.token}, expecting ${call.expect})`;
  const record = { token: call.token, tool: call.tool, expect: call.expect, isError: null, code: null, problem: null };
  results.push(record);
  let result;
  try {
    const client = await clientFor(call.token);
    result = await client.callTool({ name: call.tool, arguments: call.arguments });
  } catch (error) {
    record.threw = String(error?.message ?? error);
    failures.push(`${label}: the SDK threw: ${record.threw}`);
    continue;
  }
  record.isError = result.isError === true;
  if (record.isError) {
    const { problem, reason } = problemOf(result);
    record.problem = problem ?? null;
    record.code = problem?.code ?? null;
    if (reason) failures.push(`${label}: ${reason}: ${JSON.stringify(result).slice(0, 500)}`);
    else if (call.expect !== problem.code) failures.push(`${label}: got ${problem.code}: ${problem.detail}`);
  } else if (call.expect !== "ok") {
    failures.push(`${label}: it succeeded`);
  } else if (typeof result.structuredContent !== "object" || result.structuredContent === null) {
    failures.push(`${label}: a success without structuredContent`);
  }
}
for (const client of clients.values()) await client.close();

console.log(JSON.stringify({ sdk: sdk.version, node: process.version, listed, calls: results.length, results, failures }));
if (failures.length) {
  console.error(`${failures.length} of ${results.length} calls failed the TypeScript SDK check:\n${failures.join("\n")}`);
  process.exit(1);
}
