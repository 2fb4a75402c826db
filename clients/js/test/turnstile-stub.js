// A stand-in for Turnstile's api.js (challenges.cloudflare.com cannot be reached in the tests):
// the browser tests route that URL here. It implements what the example pages use, as
// Cloudflare documents it: implicit rendering of `.cf-turnstile` elements (a hidden
// `cf-turnstile-response` field in the form), and `?render=explicit` with `onload=` and
// `turnstile.render(container, {sitekey, callback})`, `reset`, `getResponse` and `remove`.
// Each widget passes at once with Cloudflare's documented dummy token, made unique
// (`XXXX.DUMMY.TOKEN.XXXX.<n>`), since ses-local's siteverify takes each token once.
// What happened is kept in `window.__turnstileStub` for the test to read.
(() => {
  const script = document.currentScript;
  const url = new URL(script ? script.src : 'https://challenges.cloudflare.com/turnstile/v0/api.js');
  const explicit = url.searchParams.get('render') === 'explicit';
  const stub = (window.__turnstileStub = { explicit, renders: [], tokens: [] });
  const widgets = new Map();
  let count = 0;

  function issue(id) {
    const widget = widgets.get(id);
    const token = `XXXX.DUMMY.TOKEN.XXXX.${Date.now().toString(36)}.${++count}`;
    widget.token = token;
    widget.input.value = token;
    stub.tokens.push(token);
    const callback = typeof widget.params.callback === 'string' ? window[widget.params.callback] : widget.params.callback;
    setTimeout(() => callback?.(token), 20);
  }

  function render(container, params = {}) {
    const element = typeof container === 'string' ? document.querySelector(container) : container;
    if (!element) throw new Error(`turnstile.render: no element ${container}`);
    if (!params.sitekey) throw new Error('turnstile.render: no sitekey');
    const id = `stub-widget-${widgets.size + 1}`;
    const input = document.createElement('input');
    input.type = 'hidden';
    input.name = params['response-field-name'] ?? 'cf-turnstile-response';
    element.appendChild(input);
    widgets.set(id, { params, input });
    stub.renders.push({ sitekey: params.sitekey, implicit: Boolean(params.implicit) });
    issue(id);
    return id;
  }

  const widgetOf = (id) => widgets.get(id ?? [...widgets.keys()][0]);
  window.turnstile = {
    render: (container, params) => render(container, params),
    reset: (id) => issue(id ?? [...widgets.keys()][0]),
    getResponse: (id) => widgetOf(id)?.token,
    isExpired: () => false,
    remove: (id) => {
      widgetOf(id)?.input.remove();
      widgets.delete(id);
    },
    ready: (callback) => callback(),
  };

  function renderImplicitly() {
    for (const element of document.querySelectorAll('.cf-turnstile')) {
      render(element, { sitekey: element.dataset.sitekey, callback: element.dataset.callback, implicit: true });
    }
  }
  if (!explicit) {
    if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', renderImplicitly);
    else renderImplicitly();
  }
  const onload = url.searchParams.get('onload');
  if (onload) setTimeout(() => window[onload]?.(), 0);
})();
