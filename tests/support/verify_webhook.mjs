// Verifies webhook requests with the Standard Webhooks reference library (npm
// `standardwebhooks`), as a receiving service would. Reads from stdin
// {"secret": "whsec_…", "requests": [{"headers": {…}, "body": "…"}]} and prints, one line per
// request, "ok <type>" or "refused <why>".
import { Webhook } from "standardwebhooks";

let input = "";
for await (const chunk of process.stdin) input += chunk;
const { secret, requests } = JSON.parse(input);
const hook = new Webhook(secret);
for (const { headers, body } of requests) {
  try {
    const event = hook.verify(body, headers);
    console.log(`ok ${event.type}`);
  } catch (error) {
    console.log(`refused ${error.message}`);
  }
}
