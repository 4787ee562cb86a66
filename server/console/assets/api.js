// The console's only way to the server: the public GraphQL API, over HTTP
// (queries, mutations, multipart uploads) and over a graphql-transport-ws
// websocket (subscriptions, through the vendored graphql-ws client). The API
// key is kept for the tab (sessionStorage) unless the user asked to be
// remembered (localStorage).
const KEY = 'segmentd.apiKey';

let apiKey = sessionStorage.getItem(KEY) || localStorage.getItem(KEY) || '';
let wsClient = null;

export function storedKey() { return apiKey; }

export function rememberKey(key, remember) {
  apiKey = key;
  sessionStorage.removeItem(KEY);
  localStorage.removeItem(KEY);
  (remember ? localStorage : sessionStorage).setItem(KEY, key);
}

export function forgetKey() {
  apiKey = '';
  sessionStorage.removeItem(KEY);
  localStorage.removeItem(KEY);
  if (wsClient) { wsClient.dispose(); wsClient = null; }
}

// GqlError carries the GraphQL errors of a response; code and field are the
// first error's extensions.code and extensions.field (the input path it
// names, such as input.condition.or[1].value).
export class GqlError extends Error {
  constructor(errors) {
    super(errors.map((e) => e.message).join('; '));
    this.errors = errors;
    const ext = errors[0]?.extensions || {};
    this.code = ext.code || '';
    this.field = ext.field || '';
  }
}

async function send(body, headers) {
  let res;
  try {
    res = await fetch('/graphql', { method: 'POST', headers: { authorization: 'Bearer ' + apiKey, ...headers }, body });
  } catch (e) {
    throw new GqlError([{ message: 'the server cannot be reached (' + e.message + ')', extensions: { code: 'NETWORK' } }]);
  }
  let out;
  try { out = await res.json(); } catch {
    throw new GqlError([{ message: 'HTTP ' + res.status, extensions: { code: 'HTTP_' + res.status } }]);
  }
  if (out.errors && out.errors.length) throw new GqlError(out.errors);
  return out.data;
}

export function gql(query, variables = {}) {
  return send(JSON.stringify({ query, variables }), { 'content-type': 'application/json' });
}

// upload sends a mutation with one file (GraphQL multipart request spec),
// the file being the variable fileVar.
export function upload(query, variables, fileVar, file) {
  const form = new FormData();
  form.append('operations', JSON.stringify({ query, variables: { ...variables, [fileVar]: null } }));
  form.append('map', JSON.stringify({ 0: ['variables.' + fileVar] }));
  form.append('0', file, file.name);
  return send(form, {});
}

function client() {
  if (!wsClient) {
    const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/graphql';
    wsClient = window.graphqlWs.createClient({
      url,
      lazy: true,
      connectionParams: () => ({ Authorization: 'Bearer ' + apiKey }),
      retryAttempts: 20,
      // A live view must come back after a server restart: retry with a
      // capped backoff (a refused key closes with 4403, which is fatal).
      retryWait: (n) => new Promise((r) => setTimeout(r, Math.min(500 * 2 ** n, 10000))),
    });
  }
  return wsClient;
}

// subscribe starts a subscription and returns its stop function. next gets
// each result's data; fail gets a GqlError or a connection problem.
export function subscribe(query, variables, next, fail = () => {}) {
  return client().subscribe({ query, variables }, {
    next: (r) => (r.errors && r.errors.length ? fail(new GqlError(r.errors)) : next(r.data)),
    error: (e) => fail(e instanceof Error ? e : new Error(e && e.reason ? e.reason : 'the live connection closed')),
    complete: () => {},
  });
}

// download fetches a same-site file with the key and saves it.
export async function download(path, name) {
  const res = await fetch(path, { headers: { authorization: 'Bearer ' + apiKey } });
  if (!res.ok) throw new Error('export failed: HTTP ' + res.status);
  const url = URL.createObjectURL(await res.blob());
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
