/*
 * The SLURM job this JupyterLab runs in: its time left in the status bar (from the server's
 * aifactory/session, which asks squeue), warnings at the site's minutes before the walltime
 * ends, a save of every open notebook when SLURM signals the end, a notice with "Start again"
 * when the job has ended, and the Dask panel pointed at a cluster started in this job. Beside
 * it, the job of the current notebook's kernel when that kernel runs in a job of its own (its
 * partition and time left; issue 39).
 *
 * Every end (the walltime, a stop from the hub or an operator, scancel, a node failure, a
 * revoked share) goes through SessionWatch.end: the status bar's words and its button to the hub,
 * and one notification, listed in the notification centre, shown once whichever path found it.
 */
import { IConnectionLost, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ISessionContext, Notification } from '@jupyterlab/apputils';
import { PageConfig, URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { IStatusBar } from '@jupyterlab/statusbar';
import { Widget } from '@lumino/widgets';

import { hubPage } from './hub';
import {
  crossedWarnings,
  EndCause,
  endedAfterFailure,
  endedByWalltime,
  endNoticeSilent,
  EndOnce,
  extendedNotice,
  extendedSession,
  extendLabel,
  extensionStopped,
  ISessionInfo,
  isEnding,
  kernelEndNotices,
  kernelJobShown,
  kernelStatusText,
  kernelStatusTitle,
  parseSession,
  savedNotice,
  saveRequested,
  secondsLeftAt,
  socketCloseVerdict,
  statusText,
  statusTitle,
  walltimeWarning,
  warnedAfterExtension
} from './session-logic';
import { PLUGIN_PREFIX } from './tokens';

/** The status bar shows each poll's time left, in the server's words; warnings fall due at a poll. */
const POLL_MS = 10000;
const DASK_DASHBOARD_COMMAND = 'dask:populate-dashboard-url';
/** The element JupyterLab's notification plugin adds once its toasts' code is in the page. */
const TOASTS_CONTAINER_ID = 'react-toastify-container';

/**
 * The session plugin sets this once it runs; the connection-lost plugin calls it when
 * JupyterLab finds the server gone, so that the notice says why.
 */
const serverGone: { check: (() => void) | null } = { check: null };

/** The job's status item and its notices, polled from the server. */
class SessionWatch {
  private readonly url = URLExt.join(PageConfig.getBaseUrl(), 'aifactory/session');
  private readonly settings = ServerConnection.makeSettings();
  private last: ISessionInfo | null = null;
  private fetchedAt = 0;
  private warned = new Set<number>();
  /** The save signals counted at the last poll; null before the first. */
  private saves: number | null = null;
  private dashboard = '';
  private failures = 0;
  /** The kernels' jobs whose end this page told (their ids). */
  private readonly toldKernelEnds = new Set<string>();
  private readonly ending = new EndOnce();
  /** Where the status bar's end button leads, once the end is told. */
  private endLink = '';

  private extending = false;
  /** Why no extension can pass any more ("" while one may): the button stays off, saying why. */
  private stopped = '';

  constructor(
    private app: JupyterFrontEnd,
    private item: Widget,
    private extendButton: HTMLButtonElement,
    private endButton: HTMLButtonElement,
    private kernelItem: Widget,
    private kernelCancel: HTMLButtonElement
  ) {
    kernelCancel.textContent = 'Cancel';
    kernelCancel.title = "Cancel the kernel's job while it waits to start";
    kernelCancel.addEventListener('click', () => void this.cancelKernelJob());
    app.shell.currentChanged?.connect(() => this.showKernel());
    extendButton.addEventListener('click', () => void this.extend());
    endButton.addEventListener('click', () => {
      window.location.href = this.endLink;
    });
  }

  /** Asks for more time (lab/session.py asks the hub); the time left follows the answer at once. */
  async extend(): Promise<void> {
    const session = this.last;
    if (this.extending || this.stopped || !session || !session.extendMinutes) {
      return;
    }
    this.extending = true;
    this.extendButton.disabled = true;
    try {
      const response = await ServerConnection.makeRequest(
        URLExt.join(this.url, 'extend'),
        { method: 'POST', body: JSON.stringify({ minutes: session.extendMinutes }) },
        this.settings
      );
      const answer: unknown = await response.json().catch(() => ({}));
      if (response.ok) {
        const extended = this.last && extendedSession(this.last, answer);
        if (extended && extended.secondsLeft !== null) {
          this.last = extended;
          this.fetchedAt = Date.now();
          this.warned = warnedAfterExtension(extended.secondsLeft, this.warned);
        }
        Notification.success(extendedNotice(true, answer), { autoClose: 8000 });
      } else {
        this.stopped = extensionStopped(response.status, answer);
        Notification.error(extendedNotice(false, answer), { autoClose: false });
      }
    } catch {
      Notification.error(extendedNotice(false, {}), { autoClose: false });
    } finally {
      this.extending = false;
      this.extendButton.disabled = Boolean(this.stopped);
      this.extendButton.title = this.stopped;
      this.show();
    }
  }

  /** Cancels the job of a kernel that waits to start (the server then ends its start, saying so). */
  async cancelKernelJob(): Promise<void> {
    const route = this.kernelCancel.dataset.route;
    if (!route) {
      return;
    }
    this.kernelCancel.disabled = true;
    try {
      const response = await ServerConnection.makeRequest(
        URLExt.join(PageConfig.getBaseUrl(), route),
        { method: 'DELETE' },
        this.settings
      );
      if (!response.ok) {
        const answer = (await response.json().catch(() => ({}))) as { message?: string };
        Notification.error(answer.message || `The kernel's job was not cancelled (${response.status}).`, {
          autoClose: false
        });
      }
    } catch {
      Notification.error("The kernel's job was not cancelled: the server did not answer.", { autoClose: false });
    }
    void this.poll();
  }

  /** Polls until the job (or this person's access) has ended. */
  start(): void {
    void this.poll();
    setInterval(() => void this.poll(), POLL_MS);
  }

  /** Whether the page has told the end: websockets closed after it are not reopened. */
  get ended(): boolean {
    return this.ending.ended;
  }

  /** Why the server stopped answering: one more question tells a revoked share from an ended job. */
  async gone(): Promise<void> {
    if (this.ended) {
      return;
    }
    try {
      const response = await this.request();
      if (response.status === 403) {
        this.accessEnded();
      } else {
        this.jobEnded();
      }
    } catch {
      this.jobEnded();
    }
  }

  /**
   * A websocket of this page was closed as lab/access.py closes those whose holder's access
   * ended: asks the server at once (not at the next poll). True when access has ended (the
   * notice is shown), false when the server still lets this person in.
   */
  async accessEndedNow(): Promise<boolean> {
    if (this.ended) {
      return true;
    }
    try {
      const response = await this.request();
      if (response.status === 403) {
        this.accessEnded();
      }
    } catch {
      // Not answered: the job may be ending; the polls and JupyterLab's lost connection tell.
    }
    return this.ended;
  }

  private request(): Promise<Response> {
    return ServerConnection.makeRequest(this.url, {}, this.settings);
  }

  private secondsLeft(): number | null {
    return secondsLeftAt(this.last, this.fetchedAt, Date.now());
  }

  private async poll(): Promise<void> {
    if (this.ended) {
      return;
    }
    let data: unknown;
    try {
      const response = await this.request();
      if (response.status === 403) {
        this.accessEnded();
        return;
      }
      if (!response.ok) {
        throw new Error(`status ${response.status}`);
      }
      data = await response.json();
    } catch {
      // The server is gone (the job ended) or unreachable: twice in a row, say so.
      this.failures += 1;
      if (this.last && endedAfterFailure(this.failures, this.secondsLeft())) {
        this.jobEnded();
      }
      return;
    }
    this.update(parseSession(data));
  }

  private update(session: ISessionInfo): void {
    this.failures = 0;
    this.last = session;
    this.fetchedAt = Date.now();
    if (!session.jobId) {
      this.item.node.textContent = '';
      return;
    }
    if (saveRequested(this.saves, session.saveRequests)) {
      void this.app.commands.execute('docmanager:save-all').then(() => {
        Notification.info(savedNotice(session), { autoClose: false });
      });
    }
    this.saves = session.saveRequests;
    for (const notice of kernelEndNotices(session, this.toldKernelEnds)) {
      Notification.warning(notice, { autoClose: false });
    }
    if (
      session.dashboard &&
      session.dashboard !== this.dashboard &&
      this.app.commands.hasCommand(DASK_DASHBOARD_COMMAND)
    ) {
      this.dashboard = session.dashboard;
      void this.app.commands.execute(DASK_DASHBOARD_COMMAND, { url: session.dashboard });
    }
    this.show();
  }

  private show(): void {
    const session = this.last;
    if (this.ended || !session || !session.jobId) {
      return;
    }
    const left = this.secondsLeft();
    this.extendButton.hidden = !session.extendMinutes;
    this.extendButton.textContent = extendLabel(session);
    this.item.node.textContent = statusText(session);
    this.item.node.title = statusTitle(session);
    this.item.toggleClass('aifw-ending', isEnding(left, session.warnMinutes));
    this.showKernel();
    if (left === null) {
      return;
    }
    const crossed = crossedWarnings(left, session.warnMinutes, this.warned);
    if (crossed.length) {
      crossed.forEach(minutes => this.warned.add(minutes));
      const actions = [
        {
          label: 'Save all now',
          callback: () => void this.app.commands.execute('docmanager:save-all')
        }
      ];
      const more = !this.stopped && session.extendMinutes > 0;
      if (more) {
        actions.push({ label: extendLabel(session), callback: () => void this.extend() });
      }
      Notification.warning(walltimeWarning(session, more), {
        autoClose: false,
        actions
      });
    }
  }

  /**
   * The current notebook's (or console's) kernel's job, when it runs in one of its own; else
   * nothing (an empty item takes no room: the status bar shows its items again at each resize).
   */
  private showKernel(): void {
    const widget = this.app.shell.currentWidget as { sessionContext?: ISessionContext } | null;
    const job = this.ended ? null : kernelJobShown(this.last, widget?.sessionContext?.session?.kernel?.id);
    this.kernelItem.node.textContent = job ? kernelStatusText(job) : '';
    this.kernelItem.node.title = job ? kernelStatusTitle(job) : '';
    this.kernelCancel.hidden = !job?.cancel;
    this.kernelCancel.dataset.route = job?.cancel ?? '';
    this.kernelCancel.disabled = false;
  }

  /**
   * The one way an end is told: the status bar's words and its button to the hub (there
   * whatever JupyterLab's toasts can do), and one notification whose button leads there too,
   * kept until closed and listed in the notification centre. A later end, whatever found it,
   * adds nothing.
   */
  private end(cause: EndCause, link: string): void {
    const notice = this.ending.take(cause);
    if (!notice) {
      return;
    }
    this.endLink = link;
    this.extendButton.hidden = true;
    this.kernelItem.node.textContent = '';
    this.kernelCancel.hidden = true;
    this.item.removeClass('aifw-ending');
    this.item.addClass('aifw-ended');
    this.item.node.textContent = notice.status;
    this.item.node.title = notice.message;
    this.endButton.textContent = notice.action;
    this.endButton.title = notice.message;
    this.endButton.hidden = false;
    const toastsLoaded = document.getElementById(TOASTS_CONTAINER_ID) !== null;
    Notification.error(notice.message, {
      autoClose: endNoticeSilent(cause, toastsLoaded) ? 0 : false,
      actions: [
        {
          label: notice.action,
          callback: () => {
            window.location.href = link;
          }
        }
      ]
    });
  }

  private jobEnded(): void {
    const session = this.last;
    if (!session || !session.jobId) {
      return;
    }
    this.end({ kind: 'job', timeUp: endedByWalltime(session, this.secondsLeft()) }, session.hubHome);
  }

  // A 403 from a server that still answers: the job runs, but this person's access ended
  // (its owner stopped sharing it, or the sign-in expired), not the job.
  private accessEnded(): void {
    const cause: EndCause = {
      kind: 'access',
      owner: PageConfig.getOption('hubServerUser'),
      me: PageConfig.getOption('hubUser')
    };
    this.end(cause, hubPage('home'));
  }
}

/**
 * JupyterLab fetches its toasts' code (react-toastify: a chunk of JupyterLab's own, shared with
 * no extension, so importing it here would load another copy) at the first notification it
 * shows, and its notification centre (the bell) waits for that code as it opens. A first
 * notification once the job had ended found no server to fetch it from: no toast, and a bell
 * that opened nothing. This loads it while the server answers, through the one path that shows
 * and hides nothing: the notification plugin, told that a notification was removed, loads the
 * code to hide that notification's toast, and this one never existed (no toast, no count, the
 * bell not lit; the notices already shown stay). Opening the bell instead hid every toast shown.
 */
function loadToastCode(): void {
  const never: Notification.INotification = {
    id: `${PLUGIN_PREFIX}:load-toasts`,
    message: '',
    type: 'default',
    createdAt: 0,
    modifiedAt: 0,
    options: { autoClose: false }
  };
  // The manager's signal is a Lumino Signal; its typing shows listeners only.
  const changed = Notification.manager.changed as unknown as { emit(change: Notification.IChange): void };
  changed.emit({ type: 'removed', notification: never });
}

/**
 * The websockets JupyterLab opens to this server (kernels, terminals), through one that hears
 * lab/access.py's close for an ended access before JupyterLab does: JupyterLab would reconnect,
 * be refused, and say "Kernel died unexpectedly" over the "Access ended" notice, of a kernel
 * that runs on. Such a close waits while the page asks the server, and reaches JupyterLab only
 * if the access goes on; after the end no close reaches it.
 */
function holdClosesForAccess(app: JupyterFrontEnd, watch: SessionWatch): void {
  const settings = app.serviceManager.serverSettings as { WebSocket: typeof WebSocket };
  const Base = settings.WebSocket;
  const passed = new WeakSet<Event>();
  class Held extends Base {
    constructor(url: string | URL, protocols?: string | string[]) {
      super(url, protocols);
      // Ours is the first listener (added before JupyterLab sets onclose): none after it hears.
      this.addEventListener('close', event => {
        if (passed.has(event)) {
          return;
        }
        const verdict = socketCloseVerdict(event.code, watch.ended);
        if (verdict === 'pass') {
          return;
        }
        event.stopImmediatePropagation();
        if (verdict === 'hold') {
          void watch.accessEndedNow().then(ended => {
            if (!ended) {
              const again = new CloseEvent('close', {
                code: event.code,
                reason: event.reason,
                wasClean: event.wasClean
              });
              passed.add(again);
              this.dispatchEvent(again);
            }
          });
        }
      });
    }
  }
  settings.WebSocket = Held;
}

/** A button of the status bar, hidden until used. */
function statusButton(className: string): HTMLButtonElement {
  const button = document.createElement('button');
  button.type = 'button';
  button.className = `jp-mod-styled ${className}`;
  button.hidden = true;
  return button;
}

export const sessionPlugin: JupyterFrontEndPlugin<void> = {
  id: `${PLUGIN_PREFIX}:session`,
  description: "The SLURM job's time left, warnings and a save before its end, and its Dask dashboard.",
  autoStart: true,
  optional: [IStatusBar],
  activate: (app: JupyterFrontEnd, statusBar: IStatusBar | null) => {
    const item = new Widget();
    item.addClass('aifw-session-status');
    item.node.setAttribute('role', 'status');
    item.node.textContent = '';
    const extend = statusButton('aifw-extend');
    const endAction = statusButton('aifw-end-action');
    const kernelItem = new Widget();
    kernelItem.addClass('aifw-kernel-status');
    kernelItem.node.setAttribute('role', 'status');
    const kernelCancel = statusButton('aifw-kernel-cancel');
    if (statusBar) {
      statusBar.registerStatusItem(`${PLUGIN_PREFIX}:session`, { item, align: 'left', rank: 1000 });
      statusBar.registerStatusItem(`${PLUGIN_PREFIX}:extend`, {
        item: new Widget({ node: extend }),
        align: 'left',
        rank: 1001
      });
      statusBar.registerStatusItem(`${PLUGIN_PREFIX}:end-action`, {
        item: new Widget({ node: endAction }),
        align: 'left',
        rank: 1002
      });
      statusBar.registerStatusItem(`${PLUGIN_PREFIX}:kernel-job`, { item: kernelItem, align: 'left', rank: 1003 });
      statusBar.registerStatusItem(`${PLUGIN_PREFIX}:kernel-cancel`, {
        item: new Widget({ node: kernelCancel }),
        align: 'left',
        rank: 1004
      });
    }
    const watch = new SessionWatch(app, item, extend, endAction, kernelItem, kernelCancel);
    serverGone.check = () => void watch.gone();
    holdClosesForAccess(app, watch);
    void app.restored.then(loadToastCode);
    watch.start();
  }
};

// Instead of JupyterHub's "Server unavailable or unreachable ... restart it?" dialog (its
// plugin is disabled in page_config.json): the job's end, in words, and "Start again".
export const connectionLostPlugin: JupyterFrontEndPlugin<IConnectionLost> = {
  id: `${PLUGIN_PREFIX}:connectionlost`,
  description: 'When the server is gone, says why (the job ended, or a share was revoked) and leads to the hub.',
  autoStart: true,
  provides: IConnectionLost,
  activate: (): IConnectionLost => {
    return async () => {
      serverGone.check?.();
    };
  }
};
