import {
  accessEndedNotice,
  crossedWarnings,
  endedAfterFailure,
  endedByWalltime,
  endNotice,
  endNoticeSilent,
  EndOnce,
  extendedNotice,
  extendedSession,
  extendLabel,
  extensionStopped,
  isEnding,
  jobEndedNotice,
  kernelEndNotices,
  kernelJobOf,
  kernelJobShown,
  kernelStatusText,
  kernelStatusTitle,
  NOTICE_MAX,
  parseSession,
  savedNotice,
  saveRequested,
  secondsLeftAt,
  socketCloseVerdict,
  statusText,
  statusTitle,
  walltimeWarning,
  warnedAfterExtension
} from '../src/session-logic';

// What lab/session.py answers for a job with a GPU, 2 h 5 min before its walltime ends: the
// durations in numbers and in the server's words (slurm/display.py), which the page shows.
const ANSWER = {
  job_id: '42',
  node: 'gpu1',
  partition: 'acc',
  account: 'climate',
  cpus: '4',
  memory: '8G',
  gres: 'gpu:1',
  seconds_left: 7500,
  time_left_text: '2 h 5 min',
  warn_minutes: [30, 10],
  save_before_end: 120,
  save_before_end_text: '2 min',
  save_requests: 0,
  dashboard: '',
  hub_home: 'https://hub.localhost:8000/hub/home',
  extend_minutes: 60,
  extend_text: '1 h'
};

/** The session `left` seconds (in the server's `words`) before its end, as a later poll answers. */
function at(left: number, words: string, more: Record<string, unknown> = {}) {
  return parseSession({ ...ANSWER, seconds_left: left, time_left_text: words, ...more });
}

describe('parseSession', () => {
  it('reads the server answer', () => {
    const session = parseSession(ANSWER);
    expect(session).toMatchObject({
      jobId: '42',
      node: 'gpu1',
      secondsLeft: 7500,
      timeLeftText: '2 h 5 min',
      warnMinutes: [30, 10],
      saveBeforeEnd: 120,
      saveBeforeEndText: '2 min',
      hubHome: 'https://hub.localhost:8000/hub/home',
      extendMinutes: 60,
      extendText: '1 h'
    });
  });

  it('reads a server outside a job (no job id, no time left) as empty', () => {
    const session = parseSession({ job_id: '', seconds_left: null, warn_minutes: [] });
    expect(session.jobId).toBe('');
    expect(session.secondsLeft).toBeNull();
    expect(session.timeLeftText).toBe('');
    expect(session.hubHome).toBe('/hub/home');
  });

  it('survives an answer that is not an object, or has wrong types', () => {
    expect(parseSession(null).jobId).toBe('');
    const odd = parseSession({ job_id: 7, seconds_left: '10', warn_minutes: 'x', save_requests: 'many' });
    expect(odd).toMatchObject({ jobId: '7', secondsLeft: null, warnMinutes: [], saveRequests: 0 });
    expect(parseSession({ extend_minutes: '60' }).extendMinutes).toBe(0); // not offered
    expect(parseSession({ time_left_text: 5, extend_text: null })).toMatchObject({ timeLeftText: '5', extendText: '' });
  });
});

describe('Extend', () => {
  it("offers the site's step in the status bar and in the warning", () => {
    expect(extendLabel(parseSession(ANSWER))).toBe('Extend by 1 h');
    expect(extendLabel(at(900, '15 min', { extend_minutes: 30, extend_text: '30 min' }))).toBe('Extend by 30 min');
    expect(walltimeWarning(at(900, '15 min', { save_before_end: 0, save_before_end_text: '' }), true)).toBe(
      'Your JupyterLab job ends in 15 min, when its walltime runs out. Save your work now, or extend the ' +
        'session by 1 h.'
    );
  });

  it('says the new limit and end, or the limit the hub named', () => {
    const answer = {
      job_id: '42',
      old_limit: '00:10:00',
      new_limit: '00:40:00',
      seconds_left: 2088,
      time_left_text: '35 min'
    };
    expect(extendedNotice(true, answer)).toBe('Your JupyterLab job was extended to 00:40:00. It now ends in 35 min.');
    expect(extendedNotice(true, { new_limit: '00:40:00' })).toBe('Your JupyterLab job was extended to 00:40:00.');
    expect(extendedNotice(false, { status: 403, message: 'the QoS interactive allows at most 12 h' })).toBe(
      'Not extended: the QoS interactive allows at most 12 h.'
    );
    expect(extendedNotice(false, null)).toBe('Not extended: the hub did not answer.');
  });

  it('stops the Extend button at a limit, not after a hub that did not answer', () => {
    const limit = { status: 403, message: 'the QoS interactive allows at most 12 h' };
    expect(extensionStopped(403, limit)).toBe('Not extended: the QoS interactive allows at most 12 h.');
    expect(extensionStopped(503, { status: 503, message: 'the hub did not answer' })).toBe('');
    expect(extensionStopped(409, { status: 409, message: 'one extension at a time' })).toBe('');
  });

  it("shows the hub's time left until the next poll", () => {
    const session = at(300, '5 min');
    const extended = extendedSession(session, { seconds_left: 2088, time_left_text: '35 min' });
    expect(extended).toMatchObject({ secondsLeft: 2088, timeLeftText: '35 min', jobId: '42' });
    expect(statusText(extended ?? session)).toBe('Job 42 on gpu1 \u00b7 35 min left');
    expect(extendedSession(session, { new_limit: '00:40:00' })).toBeNull();
    expect(extendedSession(session, null)).toBeNull();
  });

  it('warns again when the later end comes near', () => {
    const warned = new Set([15, 5]);
    expect([...warnedAfterExtension(40 * 60, warned)]).toEqual([]);
    expect([...warnedAfterExtension(10 * 60, warned)]).toEqual([15]);
    expect(crossedWarnings(14 * 60, [15, 5], warnedAfterExtension(40 * 60, warned))).toEqual([15]);
  });
});

describe('secondsLeftAt', () => {
  const session = parseSession(ANSWER);

  it('counts down from when the answer came, never below zero', () => {
    expect(secondsLeftAt(session, 1000, 1000)).toBe(7500);
    expect(secondsLeftAt(session, 1000, 61_000)).toBe(7440);
    expect(secondsLeftAt(session, 0, 10_000_000)).toBe(0);
  });

  it('is unknown without an answer or a time left', () => {
    expect(secondsLeftAt(null, 0, 0)).toBeNull();
    expect(secondsLeftAt(parseSession({ job_id: '1', seconds_left: null }), 0, 0)).toBeNull();
  });
});

describe('warnings', () => {
  it('shows the job as ending within the lowest threshold', () => {
    expect(isEnding(601, [30, 10])).toBe(false);
    expect(isEnding(600, [30, 10])).toBe(true);
    expect(isEnding(null, [30, 10])).toBe(false);
    expect(isEnding(1, [])).toBe(false);
    expect(isEnding(0, [])).toBe(true);
  });

  it('warns once per threshold crossed', () => {
    expect(crossedWarnings(1801, [30, 10], new Set())).toEqual([]);
    expect(crossedWarnings(1800, [30, 10], new Set())).toEqual([30]);
    expect(crossedWarnings(500, [30, 10], new Set([30]))).toEqual([10]);
    expect(crossedWarnings(500, [30, 10], new Set([30, 10]))).toEqual([]);
  });

  it('crosses every passed threshold at once for a page opened late (one notice)', () => {
    expect(crossedWarnings(300, [30, 10], new Set())).toEqual([30, 10]);
  });

  it('says when the job ends and when notebooks are saved', () => {
    expect(walltimeWarning(at(1500, '25 min'), false)).toBe(
      'Your JupyterLab job ends in 25 min, when its walltime runs out. Every open notebook is saved 2 min ' +
        'before the end. Save your work now; start a new session from the hub to go on.'
    );
    expect(walltimeWarning(at(1500, '25 min', { save_before_end: 0, save_before_end_text: '' }), false)).toBe(
      'Your JupyterLab job ends in 25 min, when its walltime runs out. Save your work now; start a new ' +
        'session from the hub to go on.'
    );
    // Offered only while the site's policy and this person allow it (the server sends no text else).
    expect(walltimeWarning(at(1500, '25 min', { extend_minutes: 0, extend_text: '' }), true)).toMatch(
      /start a new session from the hub to go on\.$/
    );
  });
});

describe('the save signal', () => {
  it('asks for a save when the count rises, not on the first poll', () => {
    expect(saveRequested(null, 1)).toBe(false);
    expect(saveRequested(0, 0)).toBe(false);
    expect(saveRequested(0, 1)).toBe(true);
  });

  it('says every open notebook was saved', () => {
    expect(savedNotice(at(110, '2 min'))).toBe('Your JupyterLab job ends in 2 min: every open notebook was saved.');
    expect(savedNotice(at(20, 'under a minute'))).toBe(
      'Your JupyterLab job ends in under a minute: every open notebook was saved.'
    );
    // squeue has not said yet: no time to name.
    expect(savedNotice(parseSession({ job_id: '42', seconds_left: null }))).toBe(
      'Your JupyterLab job ends soon: every open notebook was saved.'
    );
  });
});

describe('the status item', () => {
  const session = parseSession(ANSWER);

  it("names the job, its node and its time left, in the last poll's words", () => {
    expect(statusText(session)).toBe('Job 42 on gpu1 \u00b7 2 h 5 min left');
    expect(statusText(parseSession({ job_id: '42' }))).toBe('Job 42');
  });

  it('lists the resources in its tooltip', () => {
    expect(statusTitle(session)).toBe(
      'SLURM job 42: partition acc, account climate, 4 cores, 8G memory, gpu:1. Its walltime ends in 2 h 5 min.'
    );
    expect(statusTitle(parseSession({ job_id: '42' }))).toBe(
      'SLURM job 42: partition ?, account ?, ? cores, ? memory. Its walltime ends in ?.'
    );
  });
});

describe("the kernel's job", () => {
  // lab/slurm_kernel.py's kernel_jobs, in the session answer: a running kernel on acc, a queued one.
  const session = parseSession({
    ...ANSWER,
    kernels: [
      {
        kernel_id: 'k1',
        job_id: '43',
        partition: 'acc',
        node: 'mn5-a01',
        state: 'running',
        time_left_text: '55 min',
        detail: ''
      },
      {
        kernel_id: 'k2',
        job_id: '44',
        partition: 'acc',
        node: '',
        state: 'queued',
        time_left_text: '',
        detail: 'waiting for free CPUs, memory or GPUs; SLURM expects it to start now.'
      },
      { kernel_id: 'k3', job_id: '45', partition: 'gpp', state: 'unknown', detail: 'SLURM did not answer.' },
      'not a kernel',
      { kernel_id: 'k4' }
    ]
  });

  it("is the current notebook's kernel's, when that kernel runs in a job of its own", () => {
    expect(kernelJobOf(session, 'k1')).toMatchObject({ jobId: '43', node: 'mn5-a01', timeLeftText: '55 min' });
    expect(kernelJobOf(session, 'k9')).toBeNull(); // a kernel in the session's own job
    expect(kernelJobOf(session, 'k4')).toBeNull(); // an entry without a job is none
    expect(kernelJobOf(session, undefined)).toBeNull(); // no notebook, or no kernel
    expect(kernelJobOf(null, 'k1')).toBeNull();
    expect(parseSession({ ...ANSWER, kernels: 'x' }).kernels).toEqual([]);
    expect(parseSession(ANSWER).kernels).toEqual([]);
  });

  it("names the job, its partition and its time left, in the server's words, or its state", () => {
    expect(kernelStatusText(kernelJobOf(session, 'k1')!)).toBe('Kernel: job 43 on acc \u00b7 55 min left');
    expect(kernelStatusText(kernelJobOf(session, 'k2')!)).toBe('Kernel: job 44 on acc \u00b7 queued');
    expect(kernelStatusText(kernelJobOf(session, 'k3')!)).toBe('Kernel: job 45 on gpp \u00b7 unknown');
  });

  it("tells once how SLURM ended a kernel's job, and nothing of the others", () => {
    const notice =
      "The kernel's job 46 on acc ended: it reached its walltime limit. Its variables are gone; a restart runs in a new job.";
    const ended = parseSession({
      ...ANSWER,
      kernels: [
        { kernel_id: 'k1', job_id: '43', partition: 'acc', state: 'running', notice: '' },
        { kernel_id: 'k5', job_id: '46', partition: 'acc', state: 'ended', detail: notice, notice }
      ]
    });
    const told = new Set<string>();
    expect(kernelEndNotices(ended, told)).toEqual([notice]);
    expect(kernelEndNotices(ended, told)).toEqual([]); // the next poll: already told
    expect(kernelEndNotices(session, new Set())).toEqual([]);
    expect(kernelStatusText(kernelJobOf(ended, 'k5')!)).toBe('Kernel: job 46 on acc \u00b7 ended');
  });

  it('shows, while the notebook has no kernel yet, the job of a kernel that waits to start, with its Cancel', () => {
    const waiting = parseSession({
      ...ANSWER,
      kernels: [
        { kernel_id: 'k1', job_id: '43', partition: 'acc', state: 'running', cancel: '' },
        {
          kernel_id: 'k6',
          job_id: '47',
          partition: 'acc',
          state: 'queued',
          detail: 'waiting for free CPUs, memory or GPUs',
          cancel: 'aifactory/session/kernel-jobs/47'
        }
      ]
    });
    expect(kernelJobShown(waiting, undefined)).toMatchObject({
      jobId: '47',
      cancel: 'aifactory/session/kernel-jobs/47'
    });
    expect(kernelJobShown(waiting, 'k1')).toMatchObject({ jobId: '43', cancel: '' });
    expect(kernelJobShown(waiting, 'k-local')).toBeNull(); // a kernel of the session's own job
    expect(kernelJobShown(session, undefined)).toBeNull(); // none waits
  });

  it('says in its tooltip where the kernel runs, apart from the session, and why it waits', () => {
    expect(kernelStatusTitle(kernelJobOf(session, 'k1')!)).toBe(
      "This notebook's kernel runs in SLURM job 43 on acc (node mn5-a01), apart from your session's job. " +
        'Its walltime ends in 55 min.'
    );
    expect(kernelStatusTitle(kernelJobOf(session, 'k2')!)).toBe(
      "This notebook's kernel runs in SLURM job 44 on acc, apart from your session's job. State: queued \u2014 " +
        'waiting for free CPUs, memory or GPUs; SLURM expects it to start now.'
    );
    expect(kernelStatusTitle(kernelJobOf(session, 'k3')!)).toContain('State: unknown \u2014 SLURM did not answer.');
  });
});

describe("the job's end", () => {
  const session = parseSession(ANSWER);

  it('is said after two failed polls in a row, or at once when the time is up', () => {
    expect(endedAfterFailure(1, 300)).toBe(false);
    expect(endedAfterFailure(2, 300)).toBe(true);
    expect(endedAfterFailure(1, 0)).toBe(true);
    expect(endedAfterFailure(1, null)).toBe(false);
  });

  it('blames the walltime only when under a minute was left', () => {
    expect(endedByWalltime(session, 59)).toBe(true);
    expect(endedByWalltime(session, 60)).toBe(false);
    expect(endedByWalltime(parseSession({ job_id: '42' }), null)).toBe(false);
    expect(endedByWalltime(null, 0)).toBe(false);
  });

  it('tells the person where their work is, and that the hub says why', () => {
    expect(jobEndedNotice(true)).toBe(
      'Your JupyterLab job has ended: its walltime ran out. What you saved is in your home folder. ' +
        'The hub starts it again with the same settings.'
    );
    expect(jobEndedNotice(false)).toBe(
      'Your JupyterLab job has ended. What you saved is in your home folder. ' +
        'The hub says why and starts it again with the same settings.'
    );
  });

  it('tells a colleague whose share ended that the job and the work go on, and the owner to sign in', () => {
    expect(accessEndedNotice('alice', 'bob')).toBe(
      'alice stopped sharing this JupyterLab with you. Its job still runs, with what you saved; ' +
        'ask alice to share it again.'
    );
    expect(accessEndedNotice('alice', 'alice')).toBe(
      'Your sign-in to this JupyterLab has ended. Sign in again from the hub.'
    );
    expect(accessEndedNotice('', '')).toMatch(/^Your sign-in/);
  });
});

// Issue 36, item 7: every end (walltime, a stop from the hub or an operator, scancel, a node
// failure) gives one notice with its reason and a way back; item 8: a revoked colleague sees
// "Access ended" only, never JupyterLab's "Kernel died unexpectedly" of the owner's kernel.
describe('the end of a session', () => {
  it('gives the job\'s end its words, the walltime when it ran out, and "Start again"', () => {
    expect(endNotice({ kind: 'job', timeUp: true })).toEqual({
      status: 'Job ended',
      message: jobEndedNotice(true),
      action: 'Start again'
    });
    expect(endNotice({ kind: 'job', timeUp: false })).toEqual({
      status: 'Job ended',
      message: jobEndedNotice(false),
      action: 'Start again'
    });
  });

  it('gives an ended access its own words and a way home, never "Start again"', () => {
    expect(endNotice({ kind: 'access', owner: 'alice', me: 'bob' })).toEqual({
      status: 'Access ended',
      message: accessEndedNotice('alice', 'bob'),
      action: 'Go to your home page'
    });
  });

  it("fits every end's words whole in JupyterLab's notification (it cuts the rest)", () => {
    const causes = [
      { kind: 'job', timeUp: true },
      { kind: 'job', timeUp: false },
      { kind: 'access', owner: 'climate101-01', me: 'climate101-02' },
      { kind: 'access', owner: 'alice', me: 'alice' }
    ] as const;
    for (const cause of causes) {
      expect(endNotice(cause).message.length).toBeLessThanOrEqual(NOTICE_MAX);
    }
  });

  it('tells the end once, whichever path finds it first', () => {
    const ending = new EndOnce();
    expect(ending.ended).toBe(false);
    // A failed poll finds it...
    expect(ending.take({ kind: 'job', timeUp: false })?.status).toBe('Job ended');
    expect(ending.ended).toBe(true);
    // ...then JupyterLab's lost connection, a second poll, a refused one: nothing more.
    expect(ending.take({ kind: 'job', timeUp: false })).toBeNull();
    expect(ending.take({ kind: 'job', timeUp: true })).toBeNull();
    expect(ending.take({ kind: 'access', owner: 'alice', me: 'bob' })).toBeNull();
  });

  it('tells a revoked access once, and no job end after it', () => {
    const ending = new EndOnce();
    expect(ending.take({ kind: 'access', owner: 'alice', me: 'bob' })?.status).toBe('Access ended');
    expect(ending.take({ kind: 'job', timeUp: false })).toBeNull();
  });

  it("lists a job's end silently when JupyterLab's toasts' code is not in the page (its server is gone)", () => {
    expect(endNoticeSilent({ kind: 'job', timeUp: false }, false)).toBe(true);
    expect(endNoticeSilent({ kind: 'job', timeUp: true }, true)).toBe(false);
    // A refused access: the server still answers, the code can still be fetched.
    expect(endNoticeSilent({ kind: 'access', owner: 'alice', me: 'bob' }, false)).toBe(false);
  });

  it("holds a websocket closed for an ended access until the server is asked, so that JupyterLab's reconnection cannot say the kernel died", () => {
    expect(socketCloseVerdict(1008, false)).toBe('hold');
  });

  it('passes other closes on to JupyterLab, which reconnects', () => {
    expect(socketCloseVerdict(1006, false)).toBe('pass');
    expect(socketCloseVerdict(1000, false)).toBe('pass');
    expect(socketCloseVerdict(1011, false)).toBe('pass');
  });

  it('drops every close once the end is told: no reconnection, no dialog over the notice', () => {
    expect(socketCloseVerdict(1008, true)).toBe('drop');
    expect(socketCloseVerdict(1006, true)).toBe('drop');
  });
});
