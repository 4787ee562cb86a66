// Interop test: real, unmodified client libraries against a running segmentd.
//
// It sends identify, track and page calls with @segment/analytics-node and
// @rudderstack/rudder-sdk-node, replays one batch of each SDK byte for byte
// (a retry, which must be a duplicate), follows membershipChanged with the
// graphql-ws client, and reads the segment with a plain fetch. It prints one
// JSON summary on stdout; server/interop_test.go checks it against the
// database. It exits non-zero on any error it can see itself.
//
// Environment:
//   SEGMENTD_URL          http://127.0.0.1:port
//   SEGMENTD_KEY          a WRITE key (the SDKs' write key)
//   SEGMENTD_READ_KEY     a READ key (subscription and query)
//   SEGMENTD_SEGMENT_ID   the segment to follow: EVENT_TRIGGERED on "Sign Up",
//                         user.Channel = "Facebook"
//   SEGMENTD_RUN_ID       prefix of the user IDs (default: random)

import { randomUUID } from 'node:crypto';
import { gunzipSync } from 'node:zlib';

// The SDKs log with console.log: keep stdout for the summary alone.
console.log = console.error;
console.info = console.error;

const { Analytics: SegmentAnalytics } = await import('@segment/analytics-node');
const { default: RudderAnalytics } = await import('@rudderstack/rudder-sdk-node');
const { default: axios } = await import('axios');
const { createClient } = await import('graphql-ws');
const { default: WebSocket } = await import('ws');

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
}
const url = need('SEGMENTD_URL').replace(/\/+$/, '');
const writeKey = need('SEGMENTD_KEY');
const readKey = need('SEGMENTD_READ_KEY');
const segmentId = need('SEGMENTD_SEGMENT_ID');
const run = process.env.SEGMENTD_RUN_ID || `run-${randomUUID().slice(0, 8)}`;

const errors = [];
const fail = (where, err) => errors.push(`${where}: ${err?.stack || err?.message || err}`);

// The users each SDK sends. "fb-" users must enter the segment: one by an
// identify before the track, one by context.traits on the track itself.
function users(sdk) {
  const p = `${run}-${sdk}`;
  return {
    identified: `${p}-fb-identified`, // identify {Channel: Facebook}, then track with no traits
    context: `${p}-fb-context`, // track with context.traits {Channel: Facebook}
    google: `${p}-google`, // identify {Channel: Google}, then track: no entry
    anonymous: `${p}-anon`, // anonymousId only: no user, no entry
  };
}

// ---- graphql-ws: follow the segment from the start of its change log ----
const entries = [];
const ws = createClient({
  url: url.replace(/^http/, 'ws') + '/graphql',
  webSocketImpl: WebSocket,
  connectionParams: { Authorization: `Bearer ${readKey}` },
  retryAttempts: 0,
  lazy: false,
});
let subError = null;
const connected = new Promise((resolve, reject) => {
  const t = setTimeout(() => reject(new Error('graphql-ws: no connection_ack in 10 s')), 10000);
  ws.on('connected', () => { clearTimeout(t); resolve(); });
  ws.on('closed', (ev) => { clearTimeout(t); reject(new Error(`graphql-ws closed: ${ev?.code} ${ev?.reason}`)); });
});
const unsubscribe = ws.subscribe(
  {
    // after "0.0": replay every change since the start, then live, so the
    // subscription cannot miss an entry however fast the SDKs are (the
    // graphql-transport-ws protocol has no subscribe acknowledgement).
    query: `subscription($id: ID!) {
      membershipChanged(segmentId: $id, after: "0.0") {
        cursor kind source at segment { id } user { userId } event { messageId name }
      }
    }`,
    variables: { id: segmentId },
  },
  {
    next: (msg) => {
      if (msg.errors) { subError = msg.errors; return; }
      const c = msg.data.membershipChanged;
      entries.push({ cursor: c.cursor, kind: c.kind, source: c.source, segmentId: c.segment.id,
        userId: c.user.userId, messageId: c.event?.messageId ?? null, event: c.event?.name ?? null });
    },
    error: (err) => { subError = err; },
    complete: () => {},
  },
);
await connected;

// ---- @segment/analytics-node, unmodified: host is segmentd ----
async function sendSegment() {
  const u = users('seg');
  const out = { sdk: '@segment/analytics-node', users: u, requests: [], statuses: [], errors: [] };
  const analytics = new SegmentAnalytics({ writeKey, host: url, flushAt: 2, flushInterval: 100, maxRetries: 2 });
  analytics.on('http_request', (req) => out.requests.push({ url: req.url, headers: req.headers, body: req.body }));
  analytics.on('http_response', (res) => out.statuses.push(res.status));
  analytics.on('error', (err) => out.errors.push(String(err?.reason || err?.code || err)));
  // Resolves when the call was delivered (the SDK's callback).
  const call = (method, params) => new Promise((resolve, reject) => {
    analytics[method](params, (err, ctx) => (err ? reject(new Error(`segment ${method}: ${err.reason || err}`)) : resolve(ctx)));
  });
  await call('identify', { userId: u.identified, traits: { Channel: 'Facebook', plan: 'pro', email: `${u.identified}@example.com` } });
  await call('identify', { userId: u.google, traits: { Channel: 'Google', plan: 'free' } });
  await Promise.all([
    call('track', { userId: u.identified, event: 'Sign Up', properties: { source: 'segment', 'Reward Amount': 10 } }),
    call('track', { userId: u.context, event: 'Sign Up', properties: { source: 'segment' }, context: { traits: { Channel: 'Facebook' } } }),
    call('track', { userId: u.google, event: 'Sign Up', properties: { source: 'segment' } }),
    call('track', { anonymousId: u.anonymous, event: 'Sign Up', properties: { source: 'segment' }, context: { traits: { Channel: 'Facebook' } } }),
    call('page', { userId: u.identified, name: 'Pricing', properties: { path: '/pricing' } }),
  ]);
  await analytics.closeAndFlush({ timeout: 20000 });
  out.messages = out.requests.flatMap((r) => JSON.parse(r.body).batch.map(pick));
  return out;
}

// ---- @rudderstack/rudder-sdk-node, unmodified: dataPlaneUrl is segmentd
// (the SDK posts to dataPlaneUrl + "/v1/batch", gzip-compressed). Its
// axiosInstance option lets the test see each request as sent. ----
async function sendRudder() {
  const u = users('rs');
  const out = { sdk: '@rudderstack/rudder-sdk-node', users: u, requests: [], statuses: [], errors: [] };
  const http = axios.create();
  http.interceptors.request.use((cfg) => {
    const gz = cfg.headers?.['Content-Encoding'] === 'gzip' || cfg.headers?.get?.('Content-Encoding') === 'gzip';
    const data = Buffer.isBuffer(cfg.data) ? cfg.data : Buffer.from(String(cfg.data));
    out.requests.push({ url: `${cfg.baseURL || ''}${cfg.url}`, gzip: gz, data,
      body: (gz ? gunzipSync(data) : data).toString('utf8') });
    return cfg;
  });
  http.interceptors.response.use(
    (res) => { out.statuses.push(res.status); return res; },
    (err) => { out.statuses.push(err.response?.status ?? 0); return Promise.reject(err); },
  );
  const client = new RudderAnalytics(writeKey, {
    dataPlaneUrl: url, flushAt: 2, flushInterval: 100, axiosInstance: http, retryCount: 0, logLevel: 'error',
    errorHandler: (err) => out.errors.push(`${err?.response?.status ?? ''} ${err?.message || err}`),
  });
  const call = (method, params) => new Promise((resolve, reject) => {
    client[method](params, (err) => (err ? reject(new Error(`rudder ${method}: ${err.message || err}`)) : resolve()));
  });
  await call('identify', { userId: u.identified, traits: { Channel: 'Facebook', plan: 'pro', email: `${u.identified}@example.com` } });
  await call('identify', { userId: u.google, traits: { Channel: 'Google', plan: 'free' } });
  const tracks = Promise.all([
    call('track', { userId: u.identified, event: 'Sign Up', properties: { source: 'rudderstack', 'Reward Amount': 10 } }),
    call('track', { userId: u.context, event: 'Sign Up', properties: { source: 'rudderstack' }, context: { traits: { Channel: 'Facebook' } } }),
    call('track', { userId: u.google, event: 'Sign Up', properties: { source: 'rudderstack' } }),
    call('track', { anonymousId: u.anonymous, event: 'Sign Up', properties: { source: 'rudderstack' }, context: { traits: { Channel: 'Facebook' } } }),
    call('page', { userId: u.identified, name: 'Pricing', properties: { path: '/pricing' } }),
  ]);
  await client.flush();
  await tracks; // each callback runs when its message was delivered
  out.messages = out.requests.flatMap((r) => JSON.parse(r.body).batch.map(pick));
  return out;
}

function pick(m) {
  return { type: m.type, userId: m.userId ?? null, anonymousId: m.anonymousId ?? null, messageId: m.messageId,
    event: m.event ?? m.name ?? null, traits: m.traits ?? m.context?.traits ?? null };
}

// Sends a batch again exactly as the SDK did: a retry, so a duplicate.
async function replay(req, gzip) {
  const headers = { 'Content-Type': 'application/json', Authorization: 'Basic ' + Buffer.from(`${writeKey}:`).toString('base64') };
  if (gzip) headers['Content-Encoding'] = 'gzip';
  const res = await fetch(`${url}/v1/batch`, { method: 'POST', headers, body: gzip ? req.data : req.body });
  return { status: res.status, body: await res.text() };
}

const summary = { run, segment: null, rudder: null, replay: {}, subscription: null, query: null, errors };
try {
  summary.segment = await sendSegment();
  summary.rudder = await sendRudder();
  for (const s of [summary.segment, summary.rudder]) {
    if (s.errors.length) fail(s.sdk, s.errors.join('; '));
    if (!s.statuses.length || s.statuses.some((st) => st !== 200)) fail(s.sdk, `HTTP statuses ${s.statuses}`);
    if (!s.requests.every((r) => r.url === `${url}/v1/batch`)) fail(s.sdk, `posted to ${s.requests.map((r) => r.url)}`);
  }
  // Replay a batch with a track in it: a retry must not enter anyone again.
  const withTrack = (s) => s.requests.find((r) => JSON.parse(r.body).batch.some((m) => m.type === 'track'));
  summary.replay.segment = await replay(withTrack(summary.segment), false);
  summary.replay.rudder = await replay(withTrack(summary.rudder), true);
  for (const [k, r] of Object.entries(summary.replay)) {
    if (r.status !== 200 || r.body !== '{"success":true}') fail(`replay ${k}`, `${r.status} ${r.body}`);
  }

  // Wait for every expected entry on the subscription, then a little more
  // for any unexpected one.
  const expected = [summary.segment.users, summary.rudder.users].flatMap((u) => [u.identified, u.context]);
  const deadline = Date.now() + 20000;
  while (!expected.every((id) => entries.some((e) => e.userId === id)) && !subError && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  await new Promise((r) => setTimeout(r, 500));
  if (subError) fail('graphql-ws', JSON.stringify(subError));
  summary.subscription = { entries, expected };
  const missing = expected.filter((id) => !entries.some((e) => e.userId === id));
  if (missing.length) fail('graphql-ws', `no ENTERED change for ${missing}`);

  // A plain fetch for a query.
  const res = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${readKey}` },
    body: JSON.stringify({
      query: `query($id: ID!) { node(id: $id) { ... on Segment { name stats { totalUsers }
        members(first: 100) { totalCount edges { node { source user { userId traits } } } } } } }`,
      variables: { id: segmentId },
    }),
  });
  const q = await res.json();
  if (res.status !== 200 || q.errors) fail('fetch query', `${res.status} ${JSON.stringify(q.errors)}`);
  const seg = q.data?.node;
  summary.query = {
    status: res.status, name: seg?.name, totalUsers: seg?.stats.totalUsers, totalCount: seg?.members.totalCount,
    members: (seg?.members.edges ?? []).map((e) => ({ userId: e.node.user.userId, source: e.node.source, traits: e.node.user.traits })),
  };
} catch (err) {
  fail('interop', err);
} finally {
  unsubscribe();
  await ws.dispose();
}

// Raw bodies stay out of the summary; the messages say what was sent.
for (const s of [summary.segment, summary.rudder]) {
  if (s) s.requests = s.requests.map((r) => ({ url: r.url, bytes: (r.data ?? r.body).length, gzip: !!r.gzip }));
}
process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
process.exitCode = errors.length ? 1 : 0;
