// The queued page's logic without the page (hub/spawn_pending.html): while the JupyterLab job
// waits, the start-sooner choices the hub offers (GET api/aifactory/alternatives/USER), one
// button each, and what the page says once one was pressed. queued.js wires it to the page.
// A classic script whose text the page carries (a Jinja include): one global, aifwQueued; under
// node (the unit tests, labextension/test/), a CommonJS module.
const aifwQueued = (() => {
  'use strict';

  const LOOK_AGAIN_MS = 20000; // how often the page asks again while the job waits

  // One button per alternative: "Start now with 1 GPU instead".
  const offers = body =>
    (body.alternatives || []).map(a => ({
      text: 'Start ' + a.start_text + ' with ' + a.what + ' instead',
      options: a.options
    }));

  // What the page says after a press: the hub's answer (200: the new job; else why not).
  function outcome(ok, body) {
    if (ok) {
      return (
        'Job ' +
        body.job_id +
        ' was submitted in place of job ' +
        body.replaced +
        ', which is cancelled; this page follows the new one.'
      );
    }
    return (body.message || 'The waiting job could not be replaced.') + '';
  }

  return { LOOK_AGAIN_MS, offers, outcome };
})();

if (typeof module === 'object') {
  module.exports = aifwQueued;
}
