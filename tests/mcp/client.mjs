// Drives an MCP server over Streamable HTTP with the official TypeScript SDK (legacy era:
// `initialize`), as the tests ask: `node client.mjs '<plan JSON>'`, where the plan is
// {url, headers, calls: [{name, arguments}]}. Prints {protocolVersion, tools, results}.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const plan = JSON.parse(process.argv[2]);
const transport = new StreamableHTTPClientTransport(new URL(plan.url), {
  requestInit: { headers: plan.headers ?? {} },
});
const client = new Client({ name: "claudenest-tests", version: "1.0.0" });
await client.connect(transport);
const { tools } = await client.listTools();
const results = [];
for (const call of plan.calls ?? []) {
  results.push(await client.callTool({ name: call.name, arguments: call.arguments ?? {} }));
}
console.log(JSON.stringify({
  protocolVersion: transport.protocolVersion ?? null,
  tools: tools.map((t) => t.name),
  results,
}));
await client.close();
