// Campaigns: list, create with a segment as audience, launch, pause, end,
// re-entry policy; activation counts move live (campaignActivated).
import { html, useState, useEffect, useQuery, useSubscription, useDebounced, Field, ErrorNote, num, when } from './ui.js';
import { gql } from './api.js';

const LIST = `{ campaigns(first: 100, orderBy: {field: CREATED_AT, direction: DESC}) { totalCount edges { node {
  id name description status reentry cooldown activationCount segment { id name }
  activations(last: 5) { edges { node { id activatedAt entry user { userId } } } } } } }
  segments(first: 100, orderBy: {field: NAME, direction: ASC}) { edges { node { id name } } } }`;

export function Campaigns({ admin }) {
  const q = useQuery(LIST, {}, []);
  const reload = useDebounced(q.reload, 250);
  useSubscription('subscription { campaignActivated { cursor } }', {}, reload, []);
  const [error, setError] = useState(null);
  const setStatus = async (c, status) => {
    setError(null);
    try { await gql('mutation($id: ID!, $s: CampaignStatus) { updateCampaign(id: $id, input: {status: $s}) { id status } }', { id: c.id, s: status }); q.reload(); } catch (e) { setError(e); }
  };
  const list = q.data?.campaigns.edges.map((e) => e.node) || [];
  return html`<section aria-labelledby="camp-title">
    <h1 id="camp-title">Campaigns</h1>
    <${ErrorNote} error=${q.error || error} />
    ${admin && q.data && html`<${CreateCampaign} segments=${q.data.segments.edges.map((e) => e.node)} onCreated=${q.reload} />`}
    <div class="table-wrap"><table class="list" data-testid="campaigns">
      <thead><tr><th scope="col">Name</th><th scope="col">Status</th><th scope="col">Audience</th><th scope="col" class="opt">Re-entry</th>
        <th scope="col" class="num">Activations</th><th scope="col" class="opt">Recent</th>${admin && html`<th scope="col">Actions</th>`}</tr></thead>
      <tbody>${list.map((c) => html`<tr data-campaign=${c.id}>
        <th scope="row">${c.name}</th><td><span class=${'badge st-' + c.status}>${c.status.toLowerCase()}</span></td>
        <td>${c.segment ? html`<a href=${'#/segments/' + c.segment.id}>${c.segment.name}</a>` : html`<span class="muted">none</span>`}</td>
        <td class="opt" data-col="reentry">${c.reentry === 'ONCE' ? 'once' : 'every entry' + (c.cooldown ? ', cooldown ' + c.cooldown : '')}
          ${admin && c.status !== 'ENDED' && html`<${EditReentry} c=${c} onSaved=${q.reload} />`}</td>
        <td class="num" data-col="activations">${num(c.activationCount)}</td>
        <td class="recent opt">${c.activations.edges.map(({ node: a }) => html`<span title=${when(a.activatedAt)}>${a.user ? a.user.userId : 'erased'}${a.entry > 1 ? ' #' + a.entry : ''}</span> `)}</td>
        ${admin && html`<td class="buttons">
          ${(c.status === 'DRAFT' || c.status === 'PAUSED') && html`<button type="button" onClick=${() => setStatus(c, 'ACTIVE')} aria-label=${'Launch ' + c.name}>${c.status === 'DRAFT' ? 'Launch' : 'Resume'}</button>`}
          ${c.status === 'ACTIVE' && html`<button type="button" onClick=${() => setStatus(c, 'PAUSED')} aria-label=${'Pause ' + c.name}>Pause</button>`}
          ${c.status !== 'ENDED' && html`<button type="button" onClick=${() => setStatus(c, 'ENDED')} aria-label=${'End ' + c.name}>End</button>`}
        </td>`}
      </tr>`)}</tbody>
    </table></div>
    ${q.data && list.length === 0 && html`<p>No campaigns yet.</p>`}
  </section>`;
}

function CreateCampaign({ segments, onCreated }) {
  const [f, setF] = useState({ name: '', segmentId: '', reentry: 'ONCE', cooldown: '' });
  const [error, setError] = useState(null);
  const set = (k) => (e) => setF({ ...f, [k]: e.target.value });
  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    const input = { name: f.name, reentry: f.reentry };
    if (f.segmentId) input.segmentId = f.segmentId;
    if (f.reentry === 'EVERY_ENTRY' && f.cooldown) input.cooldown = f.cooldown;
    try { await gql('mutation($in: CreateCampaignInput!) { createCampaign(input: $in) { id } }', { in: input }); setF({ name: '', segmentId: '', reentry: 'ONCE', cooldown: '' }); onCreated(); } catch (er) { setError(er); }
  };
  const at = (k) => (error?.field === 'input.' + k ? error.message : null);
  return html`<form class="card" onSubmit=${submit} aria-labelledby="new-camp"><h2 id="new-camp">New campaign (created as a draft)</h2>
    <div class="toolbar">
      <${Field} label="Campaign name" id="camp-name" error=${at('name')}><input id="camp-name" value=${f.name} onInput=${set('name')} /><//>
      <${Field} label="Audience (segment)" id="camp-seg" error=${at('segmentId')}><select id="camp-seg" value=${f.segmentId} onChange=${set('segmentId')}>
        <option value="">choose a segment</option>${segments.map((s) => html`<option value=${s.id}>${s.name}</option>`)}</select><//>
      <${Field} label="Re-entry" id="camp-reentry"><select id="camp-reentry" value=${f.reentry} onChange=${set('reentry')}>
        <option value="ONCE">once per user, ever</option><option value="EVERY_ENTRY">on every entry</option></select><//>
      ${f.reentry === 'EVERY_ENTRY' && html`<${Field} label="Cooldown (e.g. 7d)" id="camp-cool" error=${at('cooldown')}><input id="camp-cool" value=${f.cooldown} onInput=${set('cooldown')} /><//>`}
    </div>
    <button type="submit" class="primary">Create campaign</button>
    <${ErrorNote} error=${error && !at('name') && !at('segmentId') && !at('cooldown') ? error : null} />
  </form>`;
}

// EditReentry changes a campaign's re-entry policy after creation
// (updateCampaign takes reentry and cooldown at any status but ENDED; the
// activations already written stay, and ONCE clears the cooldown).
function EditReentry({ c, onSaved }) {
  const [f, setF] = useState({ reentry: c.reentry, cooldown: c.cooldown || '' });
  const [error, setError] = useState(null);
  const id = 're-' + c.id;
  const save = async (e) => {
    e.preventDefault();
    setError(null);
    const input = { reentry: f.reentry };
    if (f.reentry === 'EVERY_ENTRY') input.cooldown = f.cooldown.trim(); // empty: none
    try {
      await gql('mutation($id: ID!, $in: UpdateCampaignInput!) { updateCampaign(id: $id, input: $in) { id reentry cooldown } }', { id: c.id, in: input });
      e.target.closest('details').open = false;
      onSaved();
    } catch (er) { setError(er); }
  };
  return html`<details><summary aria-label=${'Change re-entry of ' + c.name}>change</summary>
    <form onSubmit=${save} class="edit-form">
      <${Field} label="Re-entry" id=${id}><select id=${id} value=${f.reentry} onChange=${(e) => setF({ ...f, reentry: e.target.value })}>
        <option value="ONCE">once per user, ever</option><option value="EVERY_ENTRY">on every entry</option></select><//>
      ${f.reentry === 'EVERY_ENTRY' && html`<${Field} label="Cooldown (e.g. 7d; empty: none)" id=${id + '-cool'} error=${error?.field === 'input.cooldown' ? error.message : null}>
        <input id=${id + '-cool'} value=${f.cooldown} onInput=${(e) => setF({ ...f, cooldown: e.target.value })} /><//>`}
      <button type="submit">Save re-entry</button>
      <${ErrorNote} error=${error && error.field !== 'input.cooldown' ? error : null} />
    </form></details>`;
}
