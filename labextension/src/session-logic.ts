/*
 * What the extension decides and says, apart from JupyterLab and the DOM: the server's session
 * answer read, the time left counted down, which warning is due, and every text a person reads.
 * Kept pure so that unit tests pin the texts the browser tests look for. Durations are the
 * server's words (lab/session.py, by slurm/display.py's one rule): the page counts seconds down
 * between polls for its warnings and its end, but words no duration itself (issue 37).
 */

/** The server's `GET aifactory/session` answer (lab/session.py), checked and with defaults. */
export interface ISessionInfo {
  jobId: string;
  node: string;
  partition: string;
  account: string;
  cpus: string;
  memory: string;
  gres: string;
  /** Seconds left when the server answered; null when squeue has not said. */
  secondsLeft: number | null;
  /** That time left in words ("1 h 5 min"; "" when squeue has not said). */
  timeLeftText: string;
  /** The site's warning thresholds, in minutes. */
  warnMinutes: number[];
  /** Seconds before the end at which SLURM signals the save (0: no save signal). */
  saveBeforeEnd: number;
  /** That lead in words ("2 min"; "" for no save signal). */
  saveBeforeEndText: string;
  /** How many save signals the server has received. */
  saveRequests: number;
  /** The link of a Dask dashboard started in this job ("" when none). */
  dashboard: string;
  /** The hub's home page, where "Start again" leads. */
  hubHome: string;
  /** Minutes the Extend button adds (0: not offered: the site's policy, or not the owner). */
  extendMinutes: number;
  /** Those minutes in words ("1 h"; "" when not offered). */
  extendText: string;
  /** This server's kernels that run in SLURM jobs of their own. */
  kernels: IKernelJob[];
}

/** A kernel of this server in a SLURM job of its own (lab/slurm_kernel.py's kernel_jobs). */
export interface IKernelJob {
  kernelId: string;
  jobId: string;
  partition: string;
  /** Its node while it runs ("" otherwise). */
  node: string;
  /** "running", "queued", "ended", "unknown" (SLURM did not answer), or another SLURM state. */
  state: string;
  /** Its time left in words ("" when squeue has not said). */
  timeLeftText: string;
  /** A queued job's reason and expected start, or why its state is not known ("" while it runs). */
  detail: string;
  /** What to tell once as a notification: how SLURM ended its job ("" otherwise). */
  notice: string;
  /** While the kernel waits to start: the server's route that cancels its job ("" otherwise). */
  cancel: string;
}

function text(value: unknown): string {
  return typeof value === 'string' ? value : typeof value === 'number' ? String(value) : '';
}

function count(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : 0;
}

function kernelJobs(value: unknown): IKernelJob[] {
  const entries = Array.isArray(value) ? value : [];
  return entries
    .filter((e): e is Record<string, unknown> => !!e && typeof e === 'object')
    .map(e => ({
      kernelId: text(e.kernel_id),
      jobId: text(e.job_id),
      partition: text(e.partition),
      node: text(e.node),
      state: text(e.state),
      timeLeftText: text(e.time_left_text),
      detail: text(e.detail),
      notice: text(e.notice),
      cancel: text(e.cancel)
    }))
    .filter(job => job.kernelId && job.jobId);
}

/** Reads the server's JSON; fields it lacks or gets wrong read as empty, never as a crash. */
export function parseSession(data: unknown): ISessionInfo {
  const raw = (data && typeof data === 'object' ? data : {}) as Record<string, unknown>;
  const left = raw.seconds_left;
  return {
    jobId: text(raw.job_id),
    node: text(raw.node),
    partition: text(raw.partition),
    account: text(raw.account),
    cpus: text(raw.cpus),
    memory: text(raw.memory),
    gres: text(raw.gres),
    secondsLeft: typeof left === 'number' && Number.isFinite(left) ? left : null,
    timeLeftText: text(raw.time_left_text),
    warnMinutes: Array.isArray(raw.warn_minutes)
      ? raw.warn_minutes.filter((m): m is number => typeof m === 'number')
      : [],
    saveBeforeEnd: count(raw.save_before_end),
    saveBeforeEndText: text(raw.save_before_end_text),
    saveRequests: count(raw.save_requests),
    dashboard: text(raw.dashboard),
    hubHome: text(raw.hub_home) || '/hub/home',
    extendMinutes: count(raw.extend_minutes),
    extendText: text(raw.extend_text),
    kernels: kernelJobs(raw.kernels)
  };
}

/**
 * The session after the hub extended it: the time left it answered (hub/extend.py's
 * ``seconds_left`` and ``time_left_text``), until the next poll says more. Null when the answer
 * has no time left.
 */
export function extendedSession(session: ISessionInfo, answer: unknown): ISessionInfo | null {
  const raw = (answer && typeof answer === 'object' ? answer : {}) as Record<string, unknown>;
  const left = raw.seconds_left;
  if (typeof left !== 'number' || !Number.isFinite(left)) {
    return null;
  }
  return { ...session, secondsLeft: left, timeLeftText: text(raw.time_left_text) };
}

/**
 * Seconds left now: the server's figure counted down since it was fetched, so that the status
 * bar moves between polls. Null when the server gave none.
 */
export function secondsLeftAt(session: ISessionInfo | null, fetchedAtMs: number, nowMs: number): number | null {
  if (!session || session.secondsLeft === null) {
    return null;
  }
  return Math.max(0, session.secondsLeft - (nowMs - fetchedAtMs) / 1000);
}

/** Whether the status item shows the job as ending: within the lowest warning threshold. */
export function isEnding(left: number | null, warnMinutes: number[]): boolean {
  const lowest = Math.min(...(warnMinutes.length ? warnMinutes : [0]));
  return left !== null && left <= lowest * 60;
}

/**
 * The thresholds crossed that have not been warned of yet. All of them count as warned at once,
 * so a page opened late shows one warning, not one per threshold already passed.
 */
export function crossedWarnings(left: number, warnMinutes: number[], warned: ReadonlySet<number>): number[] {
  return warnMinutes.filter(minutes => left <= minutes * 60 && !warned.has(minutes));
}

/** Whether SLURM's save signal has come since the last poll (never on the first poll). */
export function saveRequested(previous: number | null, current: number): boolean {
  return previous !== null && current > previous;
}

/** The status bar's text: "Job 42 on node1 · 1 h 5 min left" (the last poll's time left). */
export function statusText(session: ISessionInfo): string {
  const where = session.node ? ` on ${session.node}` : '';
  return `Job ${session.jobId}${where}` + (session.timeLeftText ? ` \u00b7 ${session.timeLeftText} left` : '');
}

/** The status item's tooltip: the job's resources and its walltime's end. */
export function statusTitle(session: ISessionInfo): string {
  return (
    `SLURM job ${session.jobId}: partition ${session.partition || '?'}, account ${session.account || '?'}, ` +
    `${session.cpus || '?'} cores, ${session.memory || '?'} memory` +
    (session.gres ? `, ${session.gres}` : '') +
    `. Its walltime ends in ${session.timeLeftText || '?'}.`
  );
}

/** The job of the current notebook's kernel, when that kernel runs in a job of its own. */
export function kernelJobOf(session: ISessionInfo | null, kernelId: string | null | undefined): IKernelJob | null {
  return (kernelId && session?.kernels.find(job => job.kernelId === kernelId)) || null;
}

/**
 * The kernel's job the status bar shows: the current notebook's kernel's, or, while that
 * notebook has no kernel yet (JupyterLab learns its id once it has started), the job of a
 * kernel that waits to start, with its Cancel.
 */
export function kernelJobShown(session: ISessionInfo | null, kernelId: string | null | undefined): IKernelJob | null {
  return kernelJobOf(session, kernelId) ?? ((!kernelId && session?.kernels.find(job => job.cancel)) || null);
}

/**
 * The notices of kernels' jobs that SLURM ended (walltime, node, an operator), not yet told on
 * this page (``told``: their job ids; those returned are added to it): each is told once.
 */
export function kernelEndNotices(session: ISessionInfo, told: Set<string>): string[] {
  const fresh = session.kernels.filter(job => job.notice && !told.has(job.jobId));
  fresh.forEach(job => told.add(job.jobId));
  return fresh.map(job => job.notice);
}

/** The kernel's status item: "Kernel: job 43 on acc · 55 min left" (or its state, while it has no time left). */
export function kernelStatusText(job: IKernelJob): string {
  return (
    `Kernel: job ${job.jobId} on ${job.partition}` +
    ` \u00b7 ${job.timeLeftText ? `${job.timeLeftText} left` : job.state}`
  );
}

/** Its tooltip: where the kernel runs, apart from the session, and its walltime's end or its state. */
export function kernelStatusTitle(job: IKernelJob): string {
  const node = job.node ? ` (node ${job.node})` : '';
  const when = job.timeLeftText
    ? `Its walltime ends in ${job.timeLeftText}.`
    : `State: ${job.state}` + (job.detail ? ` \u2014 ${job.detail}` : '.');
  return `This notebook's kernel runs in SLURM job ${job.jobId} on ${job.partition}${node}, apart from your session's job. ${when}`;
}

/** The Extend button's label: "Extend by 1 h" (the server's words for the site's step). */
export function extendLabel(session: ISessionInfo): string {
  return `Extend by ${session.extendText}`;
}

/**
 * Why the Extend button can do no more, after a refusal ("" when another try may pass): the hub
 * answers 403 for a limit (QoS, partition, association, the site's most) or the site's policy,
 * which a second press would only meet again.
 */
export function extensionStopped(status: number, answer: unknown): string {
  return status === 403 ? extendedNotice(false, answer) : '';
}

/** What the page says after the hub answered an extension (lab/session.py passes its answer on). */
export function extendedNotice(ok: boolean, answer: unknown): string {
  const raw = (answer && typeof answer === 'object' ? answer : {}) as Record<string, unknown>;
  if (!ok) {
    return `Not extended: ${text(raw.message) || 'the hub did not answer'}.`;
  }
  const left = text(raw.time_left_text) ? ` It now ends in ${text(raw.time_left_text)}.` : '';
  return `Your JupyterLab job was extended to ${text(raw.new_limit) || 'a longer walltime'}.${left}`;
}

/**
 * The warnings that may come again after an extension: thresholds the new time left is above
 * are forgotten, so the page warns again when the later end comes near.
 */
export function warnedAfterExtension(left: number, warned: ReadonlySet<number>): Set<number> {
  return new Set([...warned].filter(minutes => left <= minutes * 60));
}

/**
 * The warning at a threshold, in the last poll's words (a warning falls due at a poll: its time
 * left is the server's figure then). ``extend``: whether the Extend button is offered still.
 */
export function walltimeWarning(session: ISessionInfo, extend: boolean): string {
  const save = session.saveBeforeEndText
    ? ` Every open notebook is saved ${session.saveBeforeEndText} before the end.`
    : '';
  const next =
    extend && session.extendText
      ? ` Save your work now, or extend the session by ${session.extendText}.`
      : ' Save your work now; start a new session from the hub to go on.';
  return `Your JupyterLab job ends in ${session.timeLeftText}, when its walltime runs out.` + save + next;
}

export function savedNotice(session: ISessionInfo): string {
  return `Your JupyterLab job ends ${session.timeLeftText ? `in ${session.timeLeftText}` : 'soon'}: every open notebook was saved.`;
}

/** Whether an ended job ran out of walltime (less than a minute was left), as far as the page knows. */
export function endedByWalltime(session: ISessionInfo | null, left: number | null): boolean {
  return !!session && session.secondsLeft !== null && left !== null && left < 60;
}

/** JupyterLab cuts a notification's text at this many characters (its toasts and its list alike). */
export const NOTICE_MAX = 140;

export function jobEndedNotice(timeUp: boolean): string {
  return (
    'Your JupyterLab job has ended' +
    (timeUp ? ': its walltime ran out.' : '.') +
    ' What you saved is in your home folder. The hub ' +
    (timeUp ? 'starts it again' : 'says why and starts it again') +
    ' with the same settings.'
  );
}

/**
 * Why a server that still answers refuses this page (403): its owner stopped sharing it with
 * this person, or this person's sign-in expired. The job itself runs on.
 */
export function accessEndedNotice(owner: string, me: string): string {
  return owner && me && owner !== me
    ? `${owner} stopped sharing this JupyterLab with you. Its job still runs, with what you saved; ` +
        `ask ${owner} to share it again.`
    : 'Your sign-in to this JupyterLab has ended. Sign in again from the hub.';
}

/** Why this page's session ended, as far as the page knows. */
export type EndCause =
  /** The job ended (its walltime, a stop from the hub or an operator, scancel, a node failure). */
  | { kind: 'job'; timeUp: boolean }
  /** The server still answers but refuses this person (a share revoked, a sign-in expired). */
  | { kind: 'access'; owner: string; me: string };

/** The one notice of an end: the status bar's words, the notification's, and its button's. */
export interface IEndNotice {
  status: string;
  message: string;
  action: string;
}

/**
 * The notice for an end. The page cannot ask the hub why the job ended (the hub is on another
 * origin, and the job's server is gone): it says what it knows (the walltime ran out, or not),
 * and its button leads to the hub's home page, which names the reason.
 */
export function endNotice(cause: EndCause): IEndNotice {
  return cause.kind === 'job'
    ? { status: 'Job ended', message: jobEndedNotice(cause.timeUp), action: 'Start again' }
    : { status: 'Access ended', message: accessEndedNotice(cause.owner, cause.me), action: 'Go to your home page' };
}

/**
 * An end is told once, whichever path finds it first (a failed poll, JupyterLab's lost
 * connection, a refused poll, a websocket closed for access): the first gets its notice, every
 * later one nothing.
 */
export class EndOnce {
  private told: EndCause | null = null;

  get ended(): boolean {
    return this.told !== null;
  }

  /** The notice to show for this end, or null when an end was told already. */
  take(cause: EndCause): IEndNotice | null {
    if (this.told) {
      return null;
    }
    this.told = cause;
    return endNotice(cause);
  }
}

/**
 * Whether the end's notification goes into JupyterLab's notification centre silently (listed,
 * the bell lit, no toast): a job's end while JupyterLab's toasts' code is not in the page.
 * JupyterLab would fetch that code from the job's server, which is gone: no toast would show,
 * and its toasts and its bell would wait for the code for good. The status bar's button leads to
 * the hub in every case.
 */
export function endNoticeSilent(cause: EndCause, toastCodeLoaded: boolean): boolean {
  return cause.kind === 'job' && !toastCodeLoaded;
}

/** The close code of a websocket that lab/access.py ends because its holder's access ended. */
export const ACCESS_CLOSE_CODE = 1008;

/**
 * What the page does with a websocket's close (a kernel's, a terminal's): "pass" it on to
 * JupyterLab (which reconnects); "hold" it while the page asks the server whether this person's
 * access ended (JupyterLab would otherwise reconnect, be refused, and say "Kernel died
 * unexpectedly" of a kernel that runs on); "drop" it once the page has told the end (nothing is
 * left to reconnect to, and no dialog may cover the notice).
 */
export function socketCloseVerdict(code: number, ended: boolean): 'pass' | 'hold' | 'drop' {
  if (ended) {
    return 'drop';
  }
  return code === ACCESS_CLOSE_CODE ? 'hold' : 'pass';
}

/** After how many failed polls in a row the page says the job has ended. */
export const FAILURES_BEFORE_ENDED = 2;

/** Whether a failed poll means the job has ended: failed twice in a row, or its time is up. */
export function endedAfterFailure(failures: number, left: number | null): boolean {
  return failures >= FAILURES_BEFORE_ENDED || left === 0;
}
