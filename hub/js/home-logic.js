// The home page's logic without the page (hub/home.html): the usage chart's numbers, the Dask
// workers' and notebook jobs' texts (a notebook job's state comes worded from the hub), and
// when to look again. home.js wires it to the page.
// A classic script whose text the page carries (a Jinja include): one global, aifwHome; under
// node (the unit tests, labextension/test/), a CommonJS module.
const aifwHome = (() => {
  'use strict';

  const BAR = 240; // the chart's width, in pixels

  // One row per account: its hours as the hub words them (core_hours_text: slurm/display.py, the
  // one rounding rule), and its bars (the largest number fills the chart).
  function usageRows(accounts) {
    const top = Math.max(1, ...accounts.map(a => a.core_hours), ...accounts.map(a => a.gpu_hours));
    return accounts.map(a => ({
      account: a.account,
      core: a.core_hours_text,
      gpu: a.gpu_hours_text,
      label: `${a.account}: ${a.core_hours_text} core-hours, ${a.gpu_hours_text} GPU-hours`,
      coreWidth: Math.max(1, (BAR * a.core_hours) / top),
      gpuWidth: Math.max(a.gpu_hours ? 1 : 0, (BAR * a.gpu_hours) / top)
    }));
  }
  const usageCaption = since => `Since ${since}, from SLURM's accounting (all jobs of each account).`;

  // While something runs or waits, the jobs card follows it, as the session card does.
  const following = body =>
    body.workers.length > 0 || body.notebooks.some(n => n.state === 'queued' || n.state === 'running');

  const noJobsText = days => `No Dask workers now, and no notebook job in the last ${days} days. `;
  const notebooksCaption = days => `Notebook jobs of the last ${days} days, newest first.`;
  // A notebook job's state as the hub words it and, while it is queued, why it waits and when
  // SLURM expects it to start (the hub's words too: slurm/pending.py).
  const notebookState = n => (n.waiting ? `${n.state_text}: ${n.waiting}` : n.state_text);

  // Cancel, on a queued or running notebook job only (the hub's rule: spawners/workbench_jobs.py);
  // it asks first, naming the job and what is lost; then the answer in words.
  const canCancel = n => n.state === 'queued' || n.state === 'running';
  const cancelQuestion = n =>
    `Cancel job ${n.job_id} (${n.notebook})? ` +
    (n.state === 'running'
      ? 'It stops where it is: the cells it has not run yet are not run.'
      : 'It leaves the queue without running.');
  function cancelledText(ok, body) {
    const said = body && typeof body === 'object' ? body : {};
    return ok
      ? `Cancelled: ${said.message || 'the job ends now'}.`
      : `Not cancelled: ${said.message || 'the hub did not answer'}.`;
  }

  // A group of Dask workers (one parent job) in words, its hours as the hub words them.
  function workersText(g) {
    const hours = g.gpu_hours
      ? `${g.core_hours_text} core-hours and ${g.gpu_hours_text} GPU-hours`
      : `${g.core_hours_text} core-hours`;
    return (
      `Dask workers of job ${g.parent_job}: ${g.running} running, ${g.pending} queued, ` +
      `${g.cores} ${g.cores === 1 ? 'core' : 'cores'}; ${hours} so far.`
    );
  }

  // What the card says after Extend: the new limit and the time left as the hub words them
  // (time_left_text: slurm/display.py; the page has no duration rule of its own), or the limit
  // the hub named.
  function extendedText(ok, body) {
    const said = body && typeof body === 'object' ? body : {};
    if (!ok) {
      return `Not extended: ${said.message || 'the hub did not answer'}.`;
    }
    return `Extended to ${said.new_limit}: ${said.time_left_text} left.`;
  }

  // After "Stop the job": the default server (the hub's user model) is gone or stopped.
  const serverStopped = user => {
    const server = (user.servers || {})[''];
    return !server || (!server.pending && !server.ready);
  };

  return {
    usageRows,
    usageCaption,
    following,
    noJobsText,
    notebooksCaption,
    notebookState,
    canCancel,
    cancelQuestion,
    cancelledText,
    workersText,
    serverStopped,
    extendedText
  };
})();

if (typeof module === 'object') {
  module.exports = aifwHome;
}
