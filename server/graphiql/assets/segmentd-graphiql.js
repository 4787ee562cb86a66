// segmentd's GraphiQL page: wires the API key box into every request.
//
// HTTP requests carry "Authorization: Bearer <key>"; subscriptions run over a
// websocket at the same path with the graphql-transport-ws protocol (the
// graphql-ws client bundled in graphiql.min.js), sending the same value in the
// connection_init payload: {"Authorization": "Bearer <key>"}. The key is kept
// in localStorage. Changing it rebuilds the fetcher, so GraphiQL reloads the
// schema with the new key.
(function () {
  'use strict';

  // GraphiQL's dialogs add a <style> element (react-remove-scroll), which
  // takes its nonce from this global; the page's CSP allows that nonce.
  window.__webpack_nonce__ = document.currentScript.nonce;

  var STORAGE_KEY = 'segmentd:apiKey';
  var container = document.getElementById('graphiql');
  var keyInput = document.getElementById('segmentd-api-key');
  var endpoint = container.getAttribute('data-endpoint');
  var wsURL = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + endpoint;

  function loadKey() {
    try {
      return localStorage.getItem(STORAGE_KEY) || '';
    } catch (e) {
      return '';
    }
  }

  function saveKey(key) {
    try {
      if (key) {
        localStorage.setItem(STORAGE_KEY, key);
      } else {
        localStorage.removeItem(STORAGE_KEY);
      }
    } catch (e) {
      // Storage disabled: the key lasts for this page only.
    }
  }

  function authorization() {
    var key = keyInput.value.trim();
    return key ? { Authorization: 'Bearer ' + key } : {};
  }

  function fetcher() {
    var auth = authorization();
    return GraphiQL.createFetcher({
      url: endpoint,
      headers: auth,
      subscriptionUrl: wsURL,
      wsConnectionParams: auth,
    });
  }

  var root = ReactDOM.createRoot(container);
  function render() {
    root.render(
      React.createElement(GraphiQL, {
        fetcher: fetcher(),
        isHeadersEditorEnabled: true,
        shouldPersistHeaders: false,
      })
    );
  }

  var applied = loadKey();
  function apply() {
    var key = keyInput.value.trim();
    if (key === applied) {
      return;
    }
    applied = key;
    saveKey(key);
    render();
  }
  keyInput.value = applied;
  keyInput.addEventListener('change', apply);
  // Enter applies the key; the form is never submitted.
  document.getElementById('segmentd-keybar').addEventListener('submit', function (event) {
    event.preventDefault();
    apply();
  });
  render();
})();
