// The home page's logic without the page (hub/home.html): the usage chart's numbers, the Dask
// workers', kernels' and notebook jobs' texts (a notebook job's state, a kernel's time left and
// wait come worded from the hub), and when to look again. home.js wires it to the page.
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

  // While something runs or waits, the jobs card follows it, as the session card does (a kernel
  // listed is one that runs or waits: the hub lists no other).
  const following = body =>
    body.workers.length > 0 ||
    (body.kernels || []).length > 0 ||
    body.notebooks.some(n => n.state === 'queued' || n.state === 'running');

  const count = (n, one, many) => `${n} ${n === 1 ? one : many}`;
  // A kernel in a job of its own (lab/slurm_kernel.py), as its session's card lists it (or the
  // jobs card, naming its session, when the page has no card for that session): where it runs,
  // its state, the time left or why it waits and when SLURM expects it to start, in the hub's
  // words (slurm/display.py, slurm/pending.py), and what it holds or asks for.
  function kernelText(k, withSession) {
    const where =
      `Kernel job ${k.job_id}${withSession ? ` of job ${k.session_job}` : ''} on ${k.partition}` +
      (k.node ? ` (${k.node})` : '');
    const held = count(k.cores, 'core', 'cores') + (k.gpus ? `, ${count(k.gpus, 'GPU', 'GPUs')}` : '');
    if (k.state === 'queued') {
      return `${where}: queued, asking for ${held}` + (k.waiting ? `; ${k.waiting}` : '.');
    }
    return `${where}: ${k.state}${k.time_left ? `, ${k.time_left} left` : ''}; ${held}.`;
  }

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
    kernelText,
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
