/*
 * The SLURM job this JupyterLab runs in: its time left in the status bar (from the server's
 * aifactory/session, which asks squeue), warnings at the site's minutes before the walltime
 * ends, a save of every open notebook when SLURM signals the end, a notice with "Start again"
 * when the job has ended, and the Dask panel pointed at a cluster started in this job.
 */
import { IConnectionLost, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Notification } from '@jupyterlab/apputils';
import { PageConfig, URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { IStatusBar } from '@jupyterlab/statusbar';
import { Widget } from '@lumino/widgets';

import { hubPage } from './hub';
import {
  accessEndedNotice,
  crossedWarnings,
  endedAfterFailure,
  endedByWalltime,
  extendedNotice,
  extendLabel,
  extensionStopped,
  ISessionInfo,
  isEnding,
  jobEndedNotice,
  parseSession,
  savedNotice,
  saveRequested,
  secondsLeftAt,
  statusText,
  statusTitle,
  walltimeWarning,
  warnedAfterExtension
} from './session-logic';
import { PLUGIN_PREFIX } from './tokens';

const POLL_MS = 10000;
/** The status bar's countdown moves between polls. */
const REDRAW_MS = 15000;
const DASK_DASHBOARD_COMMAND = 'dask:populate-dashboard-url';

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
  private ended = false;

  private extending = false;
  /** Why no extension can pass any more ("" while one may): the button stays off, saying why. */
  private stopped = '';

  constructor(
    private app: JupyterFrontEnd,
    private item: Widget,
    private extendButton: HTMLButtonElement
  ) {
    extendButton.addEventListener('click', () => void this.extend());
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
        const left = (answer as { seconds_left?: unknown }).seconds_left;
        if (typeof left === 'number' && this.last) {
          this.last = { ...this.last, secondsLeft: left };
          this.fetchedAt = Date.now();
          this.warned = warnedAfterExtension(left, this.warned);
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

  /** Polls until the job (or this person's access) has ended. */
  start(): void {
    void this.poll();
    setInterval(() => void this.poll(), POLL_MS);
    setInterval(() => this.show(), REDRAW_MS);
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
        Notification.info(savedNotice(this.secondsLeft()), { autoClose: false });
      });
    }
    this.saves = session.saveRequests;
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
    this.extendButton.textContent = extendLabel(session.extendMinutes);
    this.item.node.textContent = statusText(session, left);
    this.item.node.title = statusTitle(session, left);
    this.item.toggleClass('aifw-ending', isEnding(left, session.warnMinutes));
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
      const more = this.stopped ? 0 : session.extendMinutes;
      if (more) {
        actions.push({ label: extendLabel(more), callback: () => void this.extend() });
      }
      Notification.warning(walltimeWarning(left, session.saveBeforeEnd, more), {
        autoClose: false,
        actions
      });
    }
  }

  private markEnded(text: string): void {
    this.ended = true;
    this.extendButton.hidden = true;
    this.item.removeClass('aifw-ending');
    this.item.addClass('aifw-ended');
    this.item.node.textContent = text;
  }

  private jobEnded(): void {
    const session = this.last;
    if (this.ended || !session || !session.jobId) {
      return;
    }
    const timeUp = endedByWalltime(session, this.secondsLeft());
    this.markEnded('Job ended');
    Notification.error(jobEndedNotice(timeUp), {
      autoClose: false,
      actions: [
        {
          label: 'Start again',
          callback: () => {
            window.location.href = session.hubHome;
          }
        }
      ]
    });
  }

  // A 403 from a server that still answers: the job runs, but this person's access ended
  // (its owner stopped sharing it, or the sign-in expired), not the job.
  private accessEnded(): void {
    if (this.ended) {
      return;
    }
    this.markEnded('Access ended');
    const why = accessEndedNotice(PageConfig.getOption('hubServerUser'), PageConfig.getOption('hubUser'));
    Notification.error(why, {
      autoClose: false,
      actions: [
        {
          label: 'Go to your home page',
          callback: () => {
            window.location.href = hubPage('home');
          }
        }
      ]
    });
  }
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
    const extend = document.createElement('button');
    extend.type = 'button';
    extend.className = 'jp-mod-styled aifw-extend';
    extend.hidden = true;
    const extendItem = new Widget({ node: extend });
    if (statusBar) {
      statusBar.registerStatusItem(`${PLUGIN_PREFIX}:session`, { item, align: 'left', rank: 1000 });
      statusBar.registerStatusItem(`${PLUGIN_PREFIX}:extend`, { item: extendItem, align: 'left', rank: 1001 });
    }
    const watch = new SessionWatch(app, item, extend);
    serverGone.check = () => void watch.gone();
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
