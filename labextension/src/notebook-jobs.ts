/*
 * "Run as Batch Job…" on a notebook (its context menu, the Run menu, the palette), with the
 * resources asked for in a dialog, and a side panel of the user's notebook jobs with their
 * state and output (the server's aifactory/notebook-jobs).
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Dialog, ICommandPalette, Notification, showDialog } from '@jupyterlab/apputils';
import { URLExt } from '@jupyterlab/coreutils';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { IMainMenu } from '@jupyterlab/mainmenu';
import { INotebookTracker } from '@jupyterlab/notebook';
import { ServerConnection } from '@jupyterlab/services';
import { listIcon } from '@jupyterlab/ui-components';
import { ReadonlyPartialJSONObject } from '@lumino/coreutils';
import { Widget } from '@lumino/widgets';

import {
  askingView,
  batchFields,
  batchRequest,
  cancelQuestion,
  canCancel,
  errorMessage,
  estimateView,
  IBatchSettings,
  IEstimate,
  IEstimateView,
  INotebookJob,
  jobDescription,
  LatestEstimate,
  NO_JOBS_TEXT,
  stateText,
  waitingText
} from './notebook-jobs-logic';
import { PLUGIN_PREFIX } from './tokens';

const RUN_AS_BATCH_JOB_COMMAND = 'aifactory:run-as-batch-job';
const REFRESH_MS = 15000;
/** Accounting lists a new job within a few seconds. */
const REFRESH_AFTER_SUBMIT_MS = 3000;

interface IJobsAnswer extends IBatchSettings {
  jobs: INotebookJob[];
}

interface ICancelled {
  job: string;
  message: string;
}

interface ISubmitted {
  job: string;
  result_path: string;
}

function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  text?: string,
  className?: string
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (text !== undefined) {
    node.textContent = text;
  }
  if (className) {
    node.className = className;
  }
  return node;
}

/** The notebook jobs' API: its answer, or an Error that says what the server said. */
async function request<T>(url: string, settings: ServerConnection.ISettings, init: RequestInit = {}): Promise<T> {
  const response = await ServerConnection.makeRequest(url, init, settings);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(errorMessage(body, response.status));
  }
  return body as T;
}

export const notebookJobsPlugin: JupyterFrontEndPlugin<void> = {
  id: `${PLUGIN_PREFIX}:notebook-jobs`,
  description: 'Run a notebook as a SLURM batch job, and follow its notebook jobs in a side panel.',
  autoStart: true,
  optional: [IDefaultFileBrowser, INotebookTracker, IMainMenu, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    browser: IDefaultFileBrowser | null,
    notebooks: INotebookTracker | null,
    mainMenu: IMainMenu | null,
    palette: ICommandPalette | null
  ) => {
    const settings = ServerConnection.makeSettings();
    const url = URLExt.join(settings.baseUrl, 'aifactory/notebook-jobs');

    const panel = new Widget();
    panel.id = 'aifw-notebook-jobs';
    panel.addClass('aifw-notebook-jobs');
    panel.title.icon = listIcon;
    panel.title.caption = 'Notebook jobs';
    panel.node.setAttribute('role', 'region');
    panel.node.setAttribute('aria-label', 'Notebook jobs');
    app.shell.add(panel, 'left', { rank: 650 });

    // A button that opens a job's file, or says it is gone (JupyterLab alone shows nothing).
    const openButton = (label: string, className: string, path: string, factory?: string): HTMLButtonElement => {
      const button = element('button', label, `jp-mod-styled ${className}`);
      button.type = 'button';
      button.addEventListener('click', () => {
        app.serviceManager.contents
          .get(path, { content: false })
          .then(() => app.commands.execute('docmanager:open', { path, factory } as ReadonlyPartialJSONObject))
          .catch(() => Notification.warning(`${path} is no longer there: it was moved or deleted.`));
      });
      return button;
    };

    // Cancel, asked first: the server cancels one of the user's own live notebook jobs, or says why not.
    const cancelButton = (job: INotebookJob): HTMLButtonElement => {
      const button = element('button', 'Cancel', 'jp-mod-styled jp-mod-warn aifw-cancel-job');
      button.type = 'button';
      button.title = `Cancel job ${job.job}`;
      button.addEventListener('click', async () => {
        const answer = await showDialog({
          title: 'Cancel notebook job',
          body: cancelQuestion(job),
          buttons: [Dialog.cancelButton({ label: 'Keep it' }), Dialog.warnButton({ label: 'Cancel job' })]
        });
        if (!answer.button.accept) {
          return;
        }
        button.disabled = true;
        try {
          const done = await request<ICancelled>(URLExt.join(url, encodeURIComponent(job.job)), settings, {
            method: 'DELETE'
          });
          Notification.success(`${done.message}.`, { autoClose: 5000 });
        } catch (error) {
          Notification.error(`Job ${job.job} was not cancelled: ${(error as Error).message}`, { autoClose: false });
        }
        await refresh();
      });
      return button;
    };

    const jobItem = (job: INotebookJob): HTMLLIElement => {
      const item = element('li');
      item.dataset.job = job.job;
      item.dataset.state = job.state;
      item.append(element('span', stateText(job), 'aifw-job-state'), jobDescription(job));
      const waiting = waitingText(job);
      if (waiting) {
        item.append(element('div', waiting, 'aifw-job-waiting'));
      }
      // The server offers only the outputs that are there (none for a job cancelled while queued).
      if (job.result_path) {
        item.append(openButton('Open result', 'jp-mod-accept aifw-open-result', job.result_path), ' ');
      }
      if (job.log_path) {
        item.append(openButton('Log', 'aifw-open-log', job.log_path, 'Editor'), ' ');
      }
      if (canCancel(job)) {
        item.append(cancelButton(job));
      }
      return item;
    };

    const refresh = async (): Promise<void> => {
      try {
        const body = await request<IJobsAnswer>(url, settings);
        panel.node.replaceChildren(element('h2', 'Notebook jobs', 'jp-text-truncated'));
        if (!body.jobs.length) {
          panel.node.append(element('p', NO_JOBS_TEXT));
          return;
        }
        const list = element('ul');
        list.append(...body.jobs.map(jobItem));
        panel.node.append(list);
      } catch (error) {
        panel.node.replaceChildren(element('p', `Notebook jobs are not available: ${(error as Error).message}`));
      }
    };
    setInterval(() => {
      if (panel.isVisible) {
        void refresh();
      }
    }, REFRESH_MS);
    void refresh();

    // The notebook a command is about: the one it names, the open one, or the file browser's.
    const selectedNotebook = (args?: ReadonlyPartialJSONObject): string => {
      if (args && typeof args.path === 'string' && args.path) {
        return args.path;
      }
      const current = notebooks?.currentWidget;
      if (current && app.shell.currentWidget === current) {
        return current.context.path;
      }
      const selected = browser ? Array.from(browser.selectedItems())[0] : undefined;
      return selected && selected.type === 'notebook' ? selected.path : '';
    };

    // The dialog's values as the server takes them: the notebook and each field, trimmed.
    const formValues = (path: string, form: HTMLElement): Record<string, string> =>
      batchRequest(
        path,
        Array.from(form.querySelectorAll('input')).map((input): [string, string] => [input.name, input.value])
      );

    const submit = async (path: string, values: Record<string, string>): Promise<void> => {
      try {
        const made = await request<ISubmitted>(url, settings, { method: 'POST', body: JSON.stringify(values) });
        Notification.success(
          `Job ${made.job} runs ${path}: its result will be ${made.result_path}. ` +
            "Follow it in the Notebook jobs panel or on the hub's home page.",
          { autoClose: 8000 }
        );
        app.shell.activateById(panel.id);
        setTimeout(() => void refresh(), REFRESH_AFTER_SUBMIT_MS);
        await refresh();
      } catch (error) {
        Notification.error(`Not submitted: ${(error as Error).message}`, { autoClose: false });
      }
    };

    app.commands.addCommand(RUN_AS_BATCH_JOB_COMMAND, {
      label: 'Run as Batch Job…',
      caption: 'Run this notebook headless as a SLURM job of its own, with the resources you choose',
      isEnabled: () => !!selectedNotebook(),
      execute: async args => {
        const path = selectedNotebook(args);
        if (!path) {
          return;
        }
        let offered: IBatchSettings;
        try {
          offered = await request<IJobsAnswer>(url, settings);
        } catch (error) {
          Notification.error(`Notebook jobs are not available: ${(error as Error).message}`, { autoClose: false });
          return;
        }
        // Until the values are accepted: a refused Submit (Enter in a field) shows the dialog
        // again with the values and the refusal; nothing is submitted before the server accepts them.
        let values: Record<string, string> | undefined;
        let refusal: IEstimateView | undefined;
        for (;;) {
          const chosen = await batchDialog(path, offered, values, refusal);
          if (!chosen) {
            return;
          }
          const answer = await askEstimate(chosen).catch((error: Error) => error);
          const view = answer instanceof Error ? undefined : estimateView(answer);
          if (!view || view.canSubmit) {
            await submit(path, chosen); // the server checks it again, limits included
            return;
          }
          [values, refusal] = [chosen, view];
        }
      }
    });

    const estimateUrl = URLExt.join(url, 'estimate');
    const askEstimate = (values: Record<string, string>): Promise<IEstimate> =>
      request<IEstimate>(estimateUrl, settings, { method: 'POST', body: JSON.stringify(values) });

    // The dialog: a field per job setting (the given values, else the defaults), and under them
    // the partition's limits, the cost and SLURM's start for the values shown, asked as typing
    // pauses; a value that would be refused is marked, said, and disables Submit. Its values, or
    // undefined when cancelled.
    const batchDialog = async (
      path: string,
      offered: IBatchSettings,
      values?: Record<string, string>,
      refusal?: IEstimateView
    ): Promise<Record<string, string> | undefined> => {
      // A div, not a form: Enter must not submit a page form.
      const form = element('div', undefined, 'aifw-batch-form');
      form.append(
        element('p', `${path} runs headless with its own kernel; the executed notebook and its log land beside it.`)
      );
      for (const [name, labelText, help, value] of batchFields(offered)) {
        const label = element('label', labelText);
        const input = element('input');
        input.name = name;
        input.value = values?.[name] ?? value;
        input.title = help;
        input.id = `aifw-batch-${name}`;
        label.htmlFor = input.id;
        form.append(label, input);
      }
      const box = element('div', undefined, 'aifw-batch-estimate');
      box.setAttribute('aria-live', 'polite');
      const lines = {
        limits: element('p', '', 'aifw-batch-limits'),
        cost: element('p', '', 'aifw-batch-cost'),
        start: element('p', '', 'aifw-batch-start'),
        refused: element('p', '', 'aifw-batch-refused')
      };
      lines.refused.setAttribute('role', 'alert');
      lines.refused.style.color = 'var(--jp-error-color1)';
      box.append(lines.limits, lines.cost, lines.start, lines.refused);
      form.append(box);

      let revalidating = false;
      const show = (view: IEstimateView): void => {
        for (const key of ['limits', 'cost', 'start', 'refused'] as const) {
          lines[key].textContent = view[key];
        }
        for (const input of Array.from(form.querySelectorAll('input'))) {
          const refused = input.name === view.field;
          input.classList.toggle('jp-mod-error', refused);
          input.setAttribute('aria-invalid', String(refused));
          input.setCustomValidity(refused ? view.refused : '');
        }
        // JupyterLab's dialog disables its accept button while it holds an error, as it checks
        // on input: told so here, once, without asking the server again.
        box.classList.toggle('jp-mod-error', !view.canSubmit);
        revalidating = true;
        form.dispatchEvent(new Event('input', { bubbles: true }));
        revalidating = false;
      };
      const latest = new LatestEstimate<Record<string, string>, IEstimate>(askEstimate, answer =>
        show(answer instanceof Error ? askingView(answer.message) : estimateView(answer))
      );
      form.addEventListener('input', () => {
        if (!revalidating) {
          show(askingView());
          latest.ask(formValues(path, form));
        }
      });
      const dialog = new Dialog({
        title: 'Run as batch job',
        body: new Widget({ node: form }),
        buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Submit job' })]
      });
      const shown = dialog.launch();
      if (refusal) {
        show(refusal);
      } else {
        show(askingView());
        latest.ask(formValues(path, form));
      }
      const result = await shown;
      latest.stop();
      return result.button.accept ? formValues(path, form) : undefined;
    };
    app.contextMenu.addItem({
      command: RUN_AS_BATCH_JOB_COMMAND,
      selector: '.jp-DirListing-item[data-file-type="notebook"]',
      rank: 12
    });
    app.contextMenu.addItem({ command: RUN_AS_BATCH_JOB_COMMAND, selector: '.jp-Notebook', rank: 100 });
    mainMenu?.runMenu.addGroup([{ command: RUN_AS_BATCH_JOB_COMMAND }], 1000);
    palette?.addItem({ command: RUN_AS_BATCH_JOB_COMMAND, category: 'Notebook Operations' });
  }
};
