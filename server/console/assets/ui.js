// Shared pieces of the console's views: htm bound to Preact, hooks that
// read the API, and small labelled controls.
import { h } from './vendor/preact.mjs';
import { useState, useEffect, useRef, useCallback } from './vendor/hooks.mjs';
import htm from './vendor/htm.mjs';
import { gql, subscribe } from './api.js';

export const html = htm.bind(h);
export { useState, useEffect, useRef, useCallback };

// useQuery runs query whenever deps change; reload() runs it again.
export function useQuery(query, variables, deps = []) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const seq = useRef(0);
  const run = useCallback(() => {
    const n = ++seq.current;
    setState((s) => ({ ...s, loading: true }));
    gql(query, variables).then(
      (data) => n === seq.current && setState({ data, error: null, loading: false }),
      (error) => n === seq.current && setState((s) => ({ data: s.data, error, loading: false })));
  }, deps);
  useEffect(run, [run]);
  return { ...state, reload: run };
}

// useSubscription follows a subscription while deps hold; onData gets
// each result's data. It returns the last connection error, if any.
export function useSubscription(query, variables, onData, deps = [], enabled = true) {
  const [error, setError] = useState(null);
  const cb = useRef(onData);
  cb.current = onData;
  useEffect(() => {
    if (!enabled) return undefined;
    setError(null);
    return subscribe(query, variables, (d) => { setError(null); cb.current(d); }, setError);
  }, [...deps, enabled]);
  return error;
}

// debounced returns a function that calls fn once calls stop for ms.
export function useDebounced(fn, ms) {
  const t = useRef(0);
  const f = useRef(fn);
  f.current = fn;
  useEffect(() => () => clearTimeout(t.current), []);
  return useCallback((...args) => {
    clearTimeout(t.current);
    t.current = setTimeout(() => f.current(...args), ms);
  }, [ms]);
}

export const fmt = new Intl.NumberFormat();
export function num(n) { return n == null ? '–' : fmt.format(n); }
export function when(t) {
  if (!t) return '–';
  const d = new Date(t);
  return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
}

let ids = 0;
export function useId(prefix = 'f') {
  const r = useRef('');
  if (!r.current) r.current = prefix + '-' + ++ids;
  return r.current;
}

export function ErrorNote({ error }) {
  if (!error) return null;
  return html`<p class="error" role="alert">${error.code ? error.code + ': ' : ''}${error.message}</p>`;
}

// Field is a labelled control with an optional hint and error.
export function Field({ label, hint, error, children, id }) {
  return html`<div class=${'field' + (error ? ' has-error' : '')}>
    <label for=${id}>${label}</label>
    ${children}
    ${hint && html`<small class="hint" id=${id + '-hint'}>${hint}</small>`}
    ${error && html`<small class="field-error" role="alert" id=${id + '-error'}>${error}</small>`}
  </div>`;
}

export function Pager({ pageInfo, onNext, onPrev, label }) {
  if (!pageInfo) return null;
  return html`<nav class="pager" aria-label=${label || 'Pages'}>
    <button type="button" disabled=${!pageInfo.hasPreviousPage} onClick=${onPrev}>← Previous</button>
    <button type="button" disabled=${!pageInfo.hasNextPage} onClick=${onNext}>Next →</button>
  </nav>`;
}

// paging keeps Relay cursors for a connection: first/after forwards,
// last/before backwards.
export function usePaging(size) {
  const [page, setPage] = useState({ first: size, after: null, last: null, before: null });
  return {
    vars: page,
    reset: () => setPage({ first: size, after: null, last: null, before: null }),
    next: (pi) => setPage({ first: size, after: pi.endCursor, last: null, before: null }),
    prev: (pi) => setPage({ first: null, after: null, last: size, before: pi.startCursor }),
  };
}
