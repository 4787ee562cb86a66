// Webhooks (ADMIN): endpoints, their recent deliveries and failures,
// creation (the secret shown once), editing of the topics and the segment
// and campaign filters, secret rotation (the new secret shown once),
// enable/disable, and replay.
import { html, useState, useQuery, useSubscription, useDebounced, Field, ErrorNote, when } from './ui.js';
import { gql } from './api.js';

const LIST = `{ webhookEndpoints(first: 50) { edges { node { id url description enabled disabledReason topics format createdAt
  segments { id name } campaigns { id name } } } }
  segments(first: 200, orderBy: {field: NAME, direction: ASC}) { edges { node { id name } } }
  campaigns(first: 200, orderBy: {field: NAME, direction: ASC}) { edges { node { id name } } } }`;
const DELIVERIES = `query($id: ID!, $status: DeliveryStatus) { node(id: $id) { ... on WebhookEndpoint {
  deliveries(first: 10, status: $status) { totalCount edges { node { id webhookId topic status attempts lastStatusCode lastError createdAt deliveredAt nextAttemptAt } } } } } }`;
const TOPICS = ['MEMBERSHIP_ENTERED', 'MEMBERSHIP_EXITED', 'CAMPAIGN_ACTIVATED'];

export function Webhooks() {
  const q = useQuery(LIST, {}, []);
  const [tick, setTick] = useState(0);
  const [error, setError] = useState(null);
  const [note, setNote] = useState(null);
  const act = async (query, vars, msg) => {
    setError(null); setNote(null);
    try { const d = await gql(query, vars); setNote(msg(d)); q.reload(); } catch (e) { setError(e); }
  };
  const [secret, setSecret] = useState(null); // { id, secret } of the last rotation, shown once
  const list = q.data?.webhookEndpoints.edges.map((e) => e.node) || [];
  const choices = { segments: q.data?.segments.edges.map((e) => e.node) || [], campaigns: q.data?.campaigns.edges.map((e) => e.node) || [] };
  const rotate = async (w) => {
    setError(null); setNote(null); setSecret(null);
    try {
      const d = await gql('mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret } }', { id: w.id });
      setSecret({ id: w.id, secret: d.rotateWebhookSecret.secret });
    } catch (e) { setError(e); }
  };
  return html`<section aria-labelledby="wh-title">
    <div class="title-row"><h1 id="wh-title">Webhooks</h1><button type="button" onClick=${() => { q.reload(); setTick((t) => t + 1); }}>Refresh</button></div>
    <${ErrorNote} error=${q.error || error} />${note && html`<p role="status" class="note">${note}</p>`}
    <${CreateEndpoint} onCreated=${q.reload} />
    ${list.map((w) => html`<article class="card" data-endpoint=${w.id} aria-label=${'Endpoint ' + w.url}>
      <div class="title-row"><h2><code>${w.url}</code></h2><span class=${'badge ' + (w.enabled ? 'st-ACTIVE' : 'st-PAUSED')}>${w.enabled ? 'enabled' : 'disabled'}</span></div>
      <p class="muted" data-testid="endpoint-summary">${[w.format, w.topics.map((t) => t.toLowerCase().replace('_', ' ')).join(', '),
        w.segments.length ? 'segments: ' + w.segments.map((x) => x.name).join(', ') : 'every segment',
        w.campaigns.length ? 'campaigns: ' + w.campaigns.map((x) => x.name).join(', ') : 'every campaign', w.description, w.disabledReason].filter(Boolean).join(' · ')}</p>
      <div class="buttons">
        <button type="button" onClick=${() => act('mutation($id: ID!, $e: Boolean) { updateWebhookEndpoint(id: $id, input: {enabled: $e}) { id } }', { id: w.id, e: !w.enabled }, () => (w.enabled ? 'Disabled ' : 'Enabled ') + w.url)}>${w.enabled ? 'Disable' : 'Enable'}</button>
        <button type="button" onClick=${() => act('mutation($id: ID!, $since: Time) { replayWebhookDeliveries(endpointId: $id, since: $since) }', { id: w.id, since: new Date(Date.now() - 86400e3).toISOString() }, (d) => `Queued ${d.replayWebhookDeliveries} deliveries again (changes of the last 24 hours)`)}>Replay last 24 hours</button>
        <button type="button" onClick=${() => rotate(w)}>Rotate secret</button>
      </div>
      ${secret?.id === w.id && html`<p role="status" class="note">New signing secret (shown once; for 24 hours deliveries carry the old and the new signature): <code data-testid="rotated-secret">${secret.secret}</code></p>`}
      <${EditEndpoint} key=${w.id + w.topics.join() + w.segments.map((x) => x.id).join() + w.campaigns.map((x) => x.id).join()} endpoint=${w} choices=${choices}
        onSaved=${() => { setNote('Saved ' + w.url); q.reload(); }} />
      <${Deliveries} endpoint=${w} tick=${tick} />
    </article>`)}
    ${q.data && list.length === 0 && html`<p>No endpoints yet.</p>`}
  </section>`;
}

// EditEndpoint changes an endpoint's topics and its segment and campaign
// filters (updateWebhookEndpoint; an empty filter means every one).
function EditEndpoint({ endpoint: w, choices, onSaved }) {
  const [topics, setTopics] = useState(w.topics);
  const [segs, setSegs] = useState(w.segments.map((x) => x.id));
  const [camps, setCamps] = useState(w.campaigns.map((x) => x.id));
  const [error, setError] = useState(null);
  const toggle = (list, set, v) => (e) => set(e.target.checked ? [...list, v] : list.filter((x) => x !== v));
  const save = async (e) => {
    e.preventDefault();
    setError(null);
    try {
      await gql('mutation($id: ID!, $in: UpdateWebhookEndpointInput!) { updateWebhookEndpoint(id: $id, input: $in) { id } }',
        { id: w.id, in: { topics, segmentIds: segs, campaignIds: camps } });
      onSaved();
    } catch (er) { setError(er); }
  };
  const p = 'ed-' + w.id + '-';
  const boxes = (legend, items, list, set, key) => html`<fieldset class="inline"><legend>${legend}</legend>
    ${items.length ? items.map((x) => html`<div class="check"><input type="checkbox" id=${p + key + x.id} checked=${list.includes(x.id)} onChange=${toggle(list, set, x.id)} />
      <label for=${p + key + x.id}>${x.name}</label></div>`) : html`<span class="muted">none yet</span>`}</fieldset>`;
  return html`<details><summary>Edit topics and filters</summary>
    <form onSubmit=${save} class="edit-form" aria-label=${'Edit endpoint ' + w.url}>
      <fieldset class="inline"><legend>Topics</legend>${TOPICS.map((t) => html`<div class="check"><input type="checkbox" id=${p + t} checked=${topics.includes(t)}
        onChange=${toggle(topics, setTopics, t)} /><label for=${p + t}>${t.toLowerCase().replace('_', ' ')}</label></div>`)}</fieldset>
      ${boxes('Only these segments (none ticked: every segment)', choices.segments, segs, setSegs, 's')}
      ${boxes('Only these campaigns (none ticked: every campaign)', choices.campaigns, camps, setCamps, 'c')}
      <button type="submit">Save endpoint</button>
      <${ErrorNote} error=${error} />
    </form></details>`;
}

function CreateEndpoint({ onCreated }) {
  const [url, setUrl] = useState('');
  const [topics, setTopics] = useState(['MEMBERSHIP_ENTERED', 'MEMBERSHIP_EXITED']);
  const [format, setFormat] = useState('SEGMENTD');
  const [secret, setSecret] = useState(null);
  const [error, setError] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    setError(null); setSecret(null);
    try {
      const d = await gql('mutation($in: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $in) { secret endpoint { id } } }', { in: { url, topics, format } });
      setSecret(d.createWebhookEndpoint.secret); setUrl(''); onCreated();
    } catch (er) { setError(er); }
  };
  return html`<form class="card" onSubmit=${submit} aria-labelledby="new-wh"><h2 id="new-wh">New endpoint</h2>
    <${Field} label="URL" id="wh-url" error=${error?.field === 'input.url' ? error.message : null}><input id="wh-url" type="url" value=${url} onInput=${(e) => setUrl(e.target.value)} placeholder="https://example.com/hooks" /><//>
    <fieldset class="inline"><legend>Topics</legend>${TOPICS.map((t) => html`<div class="check"><input type="checkbox" id=${'wh-' + t} checked=${topics.includes(t)}
      onChange=${(e) => setTopics(e.target.checked ? [...topics, t] : topics.filter((x) => x !== t))} /><label for=${'wh-' + t}>${t.toLowerCase().replace('_', ' ')}</label></div>`)}</fieldset>
    <${Field} label="Body format" id="wh-format"><select id="wh-format" value=${format} onChange=${(e) => setFormat(e.target.value)}><option value="SEGMENTD">segmentd (Standard Webhooks)</option><option value="SEGMENT">Segment HTTP API batch</option></select><//>
    <button type="submit" class="primary">Create endpoint</button>
    <${ErrorNote} error=${error && error.field !== 'input.url' ? error : null} />
    ${secret && html`<p role="status" class="note">Signing secret (shown once): <code data-testid="secret">${secret}</code></p>`}
  </form>`;
}

// Deliveries lists an endpoint's latest deliveries, newest first, filtered
// by status (the failures are one choice away), and follows the change log
// (membershipChanged) to refresh as new ones are queued.
function Deliveries({ endpoint, tick }) {
  const [status, setStatus] = useState('');
  const vars = { id: endpoint.id, status: status || null };
  const q = useQuery(DELIVERIES, vars, [endpoint.id, status, tick]);
  const reload = useDebounced(q.reload, 500);
  useSubscription('subscription { membershipChanged { cursor } }', {}, reload, [endpoint.id]);
  const conn = q.data?.node?.deliveries;
  const id = 'dl-status-' + endpoint.id;
  return html`<div>
    <div class="toolbar"><${Field} label="Show deliveries" id=${id}><select id=${id} value=${status} onChange=${(e) => setStatus(e.target.value)}>
      <option value="">all</option><option value="FAILED">failed</option><option value="PENDING">pending (retrying)</option><option value="DELIVERED">delivered</option></select><//></div>
    <${ErrorNote} error=${q.error} />
    ${conn && html`<div class="table-wrap"><table class="list" data-testid="deliveries"><caption>Latest ${status ? status.toLowerCase() + ' ' : ''}deliveries (${conn.totalCount} in all)</caption>
      <thead><tr><th scope="col">Created</th><th scope="col">Topic</th><th scope="col">Status</th><th scope="col" class="num">Attempts</th><th scope="col">Last answer</th></tr></thead>
      <tbody>${conn.edges.map(({ node: d }) => html`<tr><td>${when(d.createdAt)}</td><td>${d.topic.toLowerCase()}</td>
        <td><span class=${'badge dl-' + d.status}>${d.status.toLowerCase()}</span></td><td class="num">${d.attempts}</td>
        <td class="reason">${d.lastStatusCode ? 'HTTP ' + d.lastStatusCode : ''}${d.lastError ? ' ' + d.lastError : ''}${d.nextAttemptAt && d.status === 'PENDING' ? ' · next ' + when(d.nextAttemptAt) : ''}</td></tr>`)}</tbody>
    </table></div>
    ${conn.edges.length === 0 && html`<p class="muted">No ${status ? status.toLowerCase() + ' ' : ''}deliveries.</p>`}`}
  </div>`;
}
