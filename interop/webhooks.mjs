// Verifies webhook requests segmentd sent, with the standardwebhooks
// package (an implementation segmentd did not write): run by
// server/interop_webhooks_test.go, which recorded the requests with a real
// receiver and writes them to SEGMENTD_WEBHOOK_CASES (a JSON list of
// {name, secret, id, timestamp, signature, body}). Prints a JSON summary:
// each case verified (with the payload's type) or refused (with why).
import { readFileSync } from "node:fs";
import { Webhook } from "standardwebhooks";

const cases = JSON.parse(readFileSync(process.env.SEGMENTD_WEBHOOK_CASES, "utf8"));
const out = { verified: [], refused: [] };
for (const c of cases) {
  const headers = { "webhook-id": c.id, "webhook-timestamp": c.timestamp, "webhook-signature": c.signature };
  try {
    const payload = new Webhook(c.secret).verify(c.body, headers);
    out.verified.push({ name: c.name, type: payload.type ?? (payload.batch ? "batch" : "?") });
  } catch (e) {
    out.refused.push({ name: c.name, error: String(e && e.message) });
  }
}
console.log(JSON.stringify(out));
