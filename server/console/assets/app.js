// The console's entry point: sign-in with an API key, the navigation, and
// the routes (in the URL's fragment, so that "/" is the only page).
import { render } from './vendor/preact.mjs';
import { html, useState, useEffect, Field, ErrorNote } from './ui.js';
import { gql, storedKey, rememberKey, forgetKey } from './api.js';
import { AudienceList, SegmentDetails } from './segments.js';
import { SegmentEditor } from './editor.js';
import { Ingestion } from './ingest.js';
import { Campaigns } from './campaigns.js';
import { Webhooks } from './webhooks.js';

function useRoute() {
  const [hash, setHash] = useState(location.hash || '#/segments');
  useEffect(() => {
    const on = () => setHash(location.hash || '#/segments');
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return hash.slice(1).split('?')[0].split('/').filter(Boolean).map(decodeURIComponent);
}

async function whoIs() {
  const d = await gql('{ viewer { keyName role } }');
  return d.viewer;
}

function SignIn({ onSignedIn, initialError }) {
  const [key, setKey] = useState('');
  const [remember, setRemember] = useState(false);
  const [error, setError] = useState(initialError);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    rememberKey(key.trim(), remember);
    try {
      onSignedIn(await whoIs());
    } catch (err) {
      forgetKey();
      setError(err.code === 'FORBIDDEN'
        ? { message: 'this key may only send events (WRITE); the console needs a READ or ADMIN key' }
        : err);
    } finally { setBusy(false); }
  };
  return html`<main class="signin">
    <form onSubmit=${submit} aria-labelledby="signin-title">
      <h1 id="signin-title">segmentd</h1>
      <p>Sign in with an API key (<code>segmentd keys create --role READ</code> or ADMIN).</p>
      <${Field} label="API key" id="api-key">
        <input id="api-key" name="api-key" type="password" autocomplete="off" spellcheck="false" required
          value=${key} onInput=${(e) => setKey(e.target.value)} autofocus />
      <//>
      <div class="check"><input id="remember" type="checkbox" checked=${remember} onChange=${(e) => setRemember(e.target.checked)} />
        <label for="remember">Remember on this device (otherwise the key is kept for this tab only)</label></div>
      <${ErrorNote} error=${error} />
      <button type="submit" class="primary" disabled=${busy}>Sign in</button>
      <p class="hint">The GraphQL IDE is at <a href="/graphiql">/graphiql</a>.</p>
    </form>
  </main>`;
}

const NAV = [
  ['segments', 'Audiences'],
  ['ingestion', 'Data ingestion'],
  ['campaigns', 'Campaigns'],
  ['webhooks', 'Webhooks', true],
];

function Shell({ viewer, route, onSignOut, children }) {
  const admin = viewer.role === 'ADMIN';
  return html`<div class="shell">
    <a class="skip" href="#main" onClick=${(e) => { e.preventDefault(); document.getElementById('main').focus(); }}>Skip to content</a>
    <header class="top">
      <a class="brand" href="#/segments">segmentd</a>
      <nav aria-label="Main">
        <ul>${NAV.filter(([, , adminOnly]) => !adminOnly || admin).map(([r, label]) => html`<li>
          <a href=${'#/' + r} aria-current=${route[0] === r ? 'page' : undefined}>${label}</a></li>`)}
          <li><a href="/graphiql">GraphiQL</a></li>
        </ul>
      </nav>
      <div class="who"><span class=${'role role-' + viewer.role} title=${'key: ' + viewer.keyName}>${viewer.role}</span>
        <button type="button" onClick=${onSignOut}>Sign out</button></div>
    </header>
    <main id="main" tabindex="-1">${children}</main>
  </div>`;
}

function App() {
  const [viewer, setViewer] = useState(null);
  const [checking, setChecking] = useState(!!storedKey());
  const [error, setError] = useState(null);
  const route = useRoute();
  useEffect(() => {
    if (!storedKey()) return;
    whoIs().then(setViewer, (e) => { forgetKey(); setError(e); }).finally(() => setChecking(false));
  }, []);
  if (checking) return html`<p class="loading">Checking the key…</p>`;
  if (!viewer) return html`<${SignIn} onSignedIn=${setViewer} initialError=${error} />`;
  const admin = viewer.role === 'ADMIN';
  let view;
  switch (route[0] || 'segments') {
    case 'segments':
      if (route[1] === 'new') view = admin ? html`<${SegmentEditor} key="new" />` : html`<p>Only ADMIN keys create segments.</p>`;
      else if (route[1] && route[2] === 'edit') view = admin ? html`<${SegmentEditor} key=${'edit' + route[1]} id=${route[1]} />` : html`<p>Only ADMIN keys edit segments.</p>`;
      else if (route[1]) view = html`<${SegmentDetails} key=${route[1]} id=${route[1]} admin=${admin} />`;
      else view = html`<${AudienceList} admin=${admin} />`;
      break;
    case 'ingestion': view = html`<${Ingestion} />`; break;
    case 'campaigns': view = html`<${Campaigns} admin=${admin} />`; break;
    case 'webhooks': view = admin ? html`<${Webhooks} />` : html`<p>Webhooks are managed with an ADMIN key.</p>`; break;
    default: view = html`<p>No such page. <a href="#/segments">Audiences</a></p>`;
  }
  return html`<${Shell} viewer=${viewer} route=${route} onSignOut=${() => { forgetKey(); setViewer(null); location.hash = ''; }}>${view}<//>`;
}

const root = document.getElementById('app');
root.textContent = ''; // the static "Loading…" note
render(html`<${App} />`, root);
