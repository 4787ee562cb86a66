// Interop test: the GraphQL clients people use, unmodified, against a running
// segmentd. Apollo Client (PersistedQueryLink over GET + HttpLink,
// GraphQLWsLink with the key as connectionParams.headers), urql
// (fetchExchange, subscriptionExchange over graphql-ws with the key on the
// upgrade request) and graphql-request (with graphql-ws for its
// subscription, the key in connectionParams) each run a query, a mutation
// and a subscription. Then what the clients see of a batch (Apollo's
// BatchHttpLink, graphql-request's batchRequests), a refused key and a
// duplicate subscription id.
//
// It prints one JSON summary on stdout; server/interop_test.go checks it.
// Every HTTP request a client sends is recorded (method, whether it carried
// the query text or the hash alone, status, body).
//
// Environment:
//   SEGMENTD_URL      http://127.0.0.1:port
//   SEGMENTD_KEY      an ADMIN key (queries, trackEvent, subscriptions)
//   SEGMENTD_RUN_ID   prefix of the user IDs (default: random)

import { createHash, randomUUID } from 'node:crypto';

const { ApolloClient, ApolloLink, HttpLink, InMemoryCache, gql } = await import('@apollo/client');
const { PersistedQueryLink } = await import('@apollo/client/link/persisted-queries');
const { GraphQLWsLink } = await import('@apollo/client/link/subscriptions');
const { BatchHttpLink } = await import('@apollo/client/link/batch-http');
const { getMainDefinition } = await import('@apollo/client/utilities');
const urqlCore = await import('@urql/core');
const { GraphQLClient } = await import('graphql-request');
const { createClient } = await import('graphql-ws');
const { default: WebSocket } = await import('ws');

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
}
const url = need('SEGMENTD_URL').replace(/\/+$/, '');
const key = need('SEGMENTD_KEY');
const run = process.env.SEGMENTD_RUN_ID || `run-${randomUUID().slice(0, 8)}`;
const httpUrl = `${url}/graphql`;
const wsUrl = httpUrl.replace(/^http/, 'ws');
const authorization = `Bearer ${key}`;

const errors = [];
const fail = (where, err) => errors.push(`${where}: ${err?.stack || err?.message || err}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const withTimeout = (p, ms, what) => Promise.race([p, sleep(ms).then(() => { throw new Error(`${what}: no answer in ${ms} ms`); })]);

// fetch that records what the client sent and what it got.
const requests = [];
function recordingFetch(client) {
  return async (input, init = {}) => {
    const u = String(input instanceof Request ? input.url : input);
    const method = (init.method || (input instanceof Request ? input.method : 'GET')).toUpperCase();
    let sentQuery = false;
    let hashed = false;
    let batch = false;
    if (method === 'GET') {
      const params = new URL(u).searchParams;
      sentQuery = params.has('query');
      hashed = (params.get('extensions') || '').includes('persistedQuery');
    } else if (typeof init.body === 'string') {
      try {
        const b = JSON.parse(init.body);
        batch = Array.isArray(b);
        sentQuery = batch ? b.some((x) => typeof x.query === 'string') : typeof b.query === 'string';
        hashed = !batch && !!b.extensions?.persistedQuery;
      } catch { /* not JSON: recorded as is */ }
    }
    const res = await fetch(input, init);
    const body = await res.clone().text();
    requests.push({ client, method, sentQuery, hashed, batch, status: res.status, body: body.slice(0, 2000) });
    return res;
  };
}

// Watches a graphql-ws client's socket closes.
function watchCloses(client) {
  const closes = [];
  client.on('closed', (ev) => closes.push({ code: ev?.code, reason: ev?.reason }));
  return closes;
}

const Q_USER = `query InteropUser($u: String!) { user(userId: $u) { userId } }`;
const M_TRACK = `mutation InteropTrack($in: TrackInput!) { trackEvent(input: $in) { duplicate event { messageId name userId } } }`;
const S_EVENTS = `subscription InteropEvents($u: String!) { eventReceived(userId: $u) { messageId name userId } }`;

// runClient drives one client: a subscription to its user's events, then
// trackEvent mutations (every 300 ms, as the protocol has no subscribe
// acknowledgement) until the subscription delivers one, then a query.
async function runClient(name, ops) {
  const userId = `${run}-${name}`;
  const out = { client: name, userId, sent: [], received: [], mutation: null, query: null, queryAgain: null };
  const got = [];
  let subErr = null;
  const stop = ops.subscribe(userId, (ev) => got.push(ev), (e) => { subErr = e; });
  try {
    const deadline = Date.now() + 20000;
    while (!got.length && !subErr && Date.now() < deadline) {
      const messageId = `${userId}-${out.sent.length + 1}`;
      const r = await ops.mutate({ in: { event: 'Interop', userId, messageId } });
      out.sent.push(messageId);
      out.mutation ??= r;
      for (let i = 0; i < 6 && !got.length && !subErr; i++) await sleep(50);
    }
    if (subErr) fail(`${name} subscription`, JSON.stringify(subErr?.message ?? subErr));
    if (!got.length) fail(`${name} subscription`, 'no event within 20 s');
    out.received = got.slice();
    out.query = await ops.query({ u: userId });
    out.queryAgain = await ops.query({ u: userId });
  } finally {
    stop();
  }
  return out;
}

// ---- Apollo Client ----
const sha256 = (q) => createHash('sha256').update(q).digest('hex');
const apolloWs = createClient({
  url: wsUrl, webSocketImpl: WebSocket, retryAttempts: 0,
  connectionParams: { headers: { Authorization: authorization } }, // the form Apollo's docs show
});
const apolloLink = ApolloLink.split(
  ({ query }) => {
    const d = getMainDefinition(query);
    return d.kind === 'OperationDefinition' && d.operation === 'subscription';
  },
  new GraphQLWsLink(apolloWs),
  new PersistedQueryLink({ sha256, useGETForHashedQueries: true }).concat(
    new HttpLink({ uri: httpUrl, headers: { Authorization: authorization }, fetch: recordingFetch('apollo') }),
  ),
);
const apollo = new ApolloClient({ link: apolloLink, cache: new InMemoryCache() });
const apolloOps = {
  subscribe(u, next, error) {
    const sub = apollo.subscribe({ query: gql(S_EVENTS), variables: { u } }).subscribe({
      next: (r) => (r.error ? error(r.error) : next(r.data.eventReceived)),
      error,
    });
    return () => sub.unsubscribe();
  },
  async mutate(vars) {
    const r = await apollo.mutate({ mutation: gql(M_TRACK), variables: vars });
    return r.data.trackEvent;
  },
  async query(vars) {
    const r = await apollo.query({ query: gql(Q_USER), variables: vars, fetchPolicy: 'network-only' });
    return r.data.user;
  },
};

// ---- urql: the key on the websocket's upgrade request ----
class KeyedWebSocket extends WebSocket {
  constructor(address, protocols) {
    super(address, protocols, { headers: { Authorization: authorization } });
  }
}
const urqlWs = createClient({ url: wsUrl, webSocketImpl: KeyedWebSocket, retryAttempts: 0 });
const urql = new urqlCore.Client({
  url: httpUrl,
  fetch: recordingFetch('urql'),
  fetchOptions: { headers: { Authorization: authorization } },
  exchanges: [
    urqlCore.cacheExchange,
    urqlCore.fetchExchange,
    urqlCore.subscriptionExchange({
      forwardSubscription(request) {
        const input = { ...request, query: request.query || '' };
        return { subscribe: (sink) => ({ unsubscribe: urqlWs.subscribe(input, sink) }) };
      },
    }),
  ],
});
const urqlOps = {
  subscribe(u, next, error) {
    const sub = urql.subscription(S_EVENTS, { u }).subscribe((r) => (r.error ? error(r.error) : next(r.data.eventReceived)));
    return () => sub.unsubscribe();
  },
  async mutate(vars) {
    const r = await urql.mutation(M_TRACK, vars).toPromise();
    if (r.error) throw r.error;
    return r.data.trackEvent;
  },
  async query(vars) {
    const r = await urql.query(Q_USER, vars, { requestPolicy: 'network-only' }).toPromise();
    if (r.error) throw r.error;
    return r.data.user;
  },
};

// ---- graphql-request, with graphql-ws for its subscription ----
const gr = new GraphQLClient(httpUrl, { headers: { Authorization: authorization }, fetch: recordingFetch('graphql-request') });
const grWs = createClient({ url: wsUrl, webSocketImpl: WebSocket, retryAttempts: 0, connectionParams: { Authorization: authorization } });
const grOps = {
  subscribe(u, next, error) {
    return grWs.subscribe({ query: S_EVENTS, variables: { u } }, {
      next: (r) => (r.errors ? error(r.errors) : next(r.data.eventReceived)),
      error,
      complete: () => {},
    });
  },
  async mutate(vars) { return (await gr.request(M_TRACK, vars)).trackEvent; },
  async query(vars) { return (await gr.request(Q_USER, vars)).user; },
};

const describe = (e) => ({
  name: e?.name ?? null,
  message: String(e?.message ?? e),
  status: e?.statusCode ?? e?.response?.status ?? null,
  bodyText: e?.bodyText ?? null,
  codes: (e?.errors ?? e?.response?.errors ?? e?.graphQLErrors ?? []).map?.((x) => x?.extensions?.code ?? null) ?? [],
});

const summary = { run, clients: [], requests, batch: {}, websocket: {}, errors };
try {
  for (const [name, ops] of [['apollo', apolloOps], ['urql', urqlOps], ['graphql-request', grOps]]) {
    try {
      summary.clients.push(await withTimeout(runClient(name, ops), 60000, name));
    } catch (e) {
      fail(name, e);
    }
  }

  // Batches: refused with BAD_REQUEST, which the clients surface as errors.
  try {
    await gr.batchRequests([{ document: Q_USER, variables: { u: 'a' } }, { document: Q_USER, variables: { u: 'b' } }]);
    summary.batch.graphqlRequest = { ok: true };
  } catch (e) {
    summary.batch.graphqlRequest = describe(e);
  }
  const batchClient = new ApolloClient({
    cache: new InMemoryCache(),
    link: new BatchHttpLink({ uri: httpUrl, headers: { Authorization: authorization }, fetch: recordingFetch('apollo-batch'), batchMax: 5, batchInterval: 20 }),
  });
  try {
    await Promise.all(['a', 'b'].map((u) => batchClient.query({ query: gql(Q_USER), variables: { u }, fetchPolicy: 'network-only' })));
    summary.batch.apollo = { ok: true };
  } catch (e) {
    summary.batch.apollo = describe(e);
  }

  // A refused key: closed with 4403, no acknowledgement.
  const refused = createClient({ url: wsUrl, webSocketImpl: WebSocket, retryAttempts: 0, lazy: false,
    connectionParams: { headers: { Authorization: 'Bearer sgd_not_a_key' } }, onNonLazyError: () => {} });
  const refusedCloses = watchCloses(refused);
  let acked = false;
  refused.on('connected', () => { acked = true; });
  await withTimeout((async () => { while (!refusedCloses.length) await sleep(20); })(), 10000, 'refused key');
  summary.websocket.refused = { closes: refusedCloses, acked };
  await refused.dispose();

  // Two subscriptions with one id (a client whose generateID repeats):
  // closed with 4409.
  const dup = createClient({ url: wsUrl, webSocketImpl: WebSocket, retryAttempts: 0, generateID: () => 'same-id',
    connectionParams: { Authorization: authorization } });
  const dupCloses = watchCloses(dup);
  const dupErrors = [];
  const sink = { next: () => {}, error: (e) => dupErrors.push(e?.code ?? String(e)), complete: () => {} };
  const un1 = dup.subscribe({ query: S_EVENTS, variables: { u: `${run}-dup` } }, sink);
  const un2 = dup.subscribe({ query: S_EVENTS, variables: { u: `${run}-dup` } }, sink);
  await withTimeout((async () => { while (!dupCloses.length) await sleep(20); })(), 10000, 'duplicate id');
  summary.websocket.duplicate = { closes: dupCloses, errors: dupErrors };
  un1(); un2();
  await dup.dispose();
} catch (err) {
  fail('interop', err);
} finally {
  await Promise.allSettled([apolloWs.dispose(), urqlWs.dispose(), grWs.dispose()]);
  apollo.stop?.();
}

process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
process.exitCode = errors.length ? 1 : 0;
process.exit();
