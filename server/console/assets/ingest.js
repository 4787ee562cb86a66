// Data ingestion: the live event stream (eventReceived) with each event's
// outcome per segment, filtered by event name and user, paused and resumed.
import { html, useState, useEffect, useRef, useSubscription, useDebounced, Field, ErrorNote, when } from './ui.js';
import { gql } from './api.js';

const EVENT = 'id messageId type name userId anonymousId timestamp receivedAt properties outcomes { segment { id name } entered reason }';
const KEEP = 200;

export function Ingestion() {
  const [filter, setFilter] = useState({ name: '', userId: '' });
  const [active, setActive] = useState({ name: '', userId: '' });
  const [events, setEvents] = useState([]);
  const [held, setHeld] = useState([]);
  const [paused, setPaused] = useState(false);
  const [error, setError] = useState(null);
  const pausedRef = useRef(false);
  pausedRef.current = paused;
  const apply = useDebounced((f) => setActive(f), 300);
  const vars = { name: active.name || null, userId: active.userId || null };

  useEffect(() => {
    const where = {};
    if (vars.name) where.name = vars.name;
    if (vars.userId) where.userID = vars.userId;
    gql(`query($where: EventWhereInput) { events(first: 20, where: $where) { edges { node { ${EVENT} } } } }`, { where })
      .then((d) => { setEvents(d.events.edges.map((e) => e.node)); setHeld([]); setError(null); }, setError);
  }, [vars.name, vars.userId]);

  const liveError = useSubscription(`subscription($name: String, $userId: String) { eventReceived(name: $name, userId: $userId) { ${EVENT} } }`, vars,
    (d) => {
      const ev = d.eventReceived;
      if (pausedRef.current) setHeld((h) => [ev, ...h].slice(0, KEEP));
      else setEvents((es) => [ev, ...es.filter((x) => x.id !== ev.id)].slice(0, KEEP));
    }, [vars.name, vars.userId]);

  const resume = () => { setEvents((es) => [...held, ...es].slice(0, KEEP)); setHeld([]); setPaused(false); };
  const change = (k) => (e) => { const f = { ...filter, [k]: e.target.value }; setFilter(f); apply(f); };
  return html`<section aria-labelledby="ing-title">
    <h1 id="ing-title">Data ingestion</h1>
    <p class="muted">Events as they arrive, with what each segment did with them. Send events with <code>trackEvent</code> or the Segment-compatible <code>/v1/track</code>.</p>
    <div class="toolbar">
      <${Field} label="Event name" id="ing-name"><input id="ing-name" value=${filter.name} onInput=${change('name')} placeholder="all events" /><//>
      <${Field} label="User ID" id="ing-user"><input id="ing-user" value=${filter.userId} onInput=${change('userId')} placeholder="all users" /><//>
      <div class="field"><span class="label-like">Stream</span>
        ${paused ? html`<button type="button" class="primary" onClick=${resume}>Resume${held.length ? ` (${held.length} new)` : ''}</button>`
          : html`<button type="button" onClick=${() => setPaused(true)}>Pause</button>`}</div>
    </div>
    <p class=${'live ' + (paused ? 'is-paused' : liveError ? 'is-down' : 'is-live')} role="status">${paused ? 'Paused: new events are held.' : liveError ? 'Live stream interrupted: ' + liveError.message : 'Live'}</p>
    <${ErrorNote} error=${error} />
    <ol class="events" data-testid="events" aria-label="Events, newest first">
      ${events.map((ev) => html`<li key=${ev.id} class="event" data-message=${ev.messageId}>
        <div class="event-head"><strong>${ev.name || ev.type.toLowerCase()}</strong> <span class="muted">${ev.userId || ev.anonymousId || ''} · ${when(ev.receivedAt)}</span></div>
        <details><summary>Properties</summary><pre>${JSON.stringify(ev.properties, null, 2)}</pre></details>
        ${ev.outcomes.length ? html`<ul class="outcomes">${ev.outcomes.map((o) => html`<li class=${o.entered ? 'entered' : 'not-entered'}>
          <span class="badge">${o.entered ? 'entered' : 'no'}</span> <a href=${'#/segments/' + o.segment.id}>${o.segment.name}</a>: ${o.reason}</li>`)}</ul>`
          : html`<p class="muted">No segment is triggered by this event.</p>`}
      </li>`)}
    </ol>
    ${events.length === 0 && html`<p>No events yet.</p>`}
  </section>`;
}
