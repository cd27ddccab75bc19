// A small agent loop with long-term memory, in Node: the twin of agent_loop.py.
//
// Each user turn: recall what is known about the user (search), answer with it,
// then remember what the user said about themselves (create). Start a server
// first (`bash .ci/serve`), build the SDK (`cd clients/node && npm run build`), then:
//
//   node examples/agent-loop.mjs          # MNEMO_ADDRESS, else localhost:50051
//
// In your own project, `npm install @mnemo/client` and import from "@mnemo/client";
// here the example uses the SDK built in this repository.

import { randomUUID } from "node:crypto";
import { MnemoClient } from "../clients/node/dist/index.js";

const TURNS = [
  "I am allergic to peanuts.",
  "I live in Lisbon and I cycle to work.",
  "Suggest a snack for my ride.",
  "What should I never eat?",
];

/** Stands in for the model: a prompt with the recalled memories. */
function reply(turn, recalled) {
  return `(knowing: ${recalled.join("; ") || "nothing yet"}) -> answer to ${JSON.stringify(turn)}`;
}

const user = process.env.AGENT_USER || `example-${randomUUID().slice(0, 8)}`;
const client = new MnemoClient();
try {
  for (const turn of TURNS) {
    const { hits } = await client.search(turn, { userId: user, topK: 3, minScore: 0.2 });
    console.log(`user:  ${turn}`);
    console.log(`agent: ${reply(turn, hits.map((h) => h.memory.content))}`);
    if (turn.startsWith("I ")) {
      await client.create(turn, { userId: user, agentId: "example-agent", kind: "semantic", tags: ["profile"] });
    }
  }
  const final = (await client.search("food the user must avoid", { userId: user, topK: 1 })).hits;
  console.log(`recalled: ${final[0]?.memory.content ?? "-"}`);
  await client.deleteMemories({ userId: user }); // leave the server as we found it
} finally {
  await client.close();
}
