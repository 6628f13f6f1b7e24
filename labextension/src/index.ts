/*
 * AI Factory Workbench's JupyterLab extension. Its plugins:
 *  - examples: the "Example notebooks" Launcher card (examples.ts);
 *  - session and connectionlost: the job's time left, warnings, the save before the end, the
 *    notice of the job's end, the Dask panel pointed at this job's cluster (session.ts);
 *  - notebook-jobs: "Run as Batch Job…" and the Notebook jobs panel (notebook-jobs.ts);
 *  - share: "Share This JupyterLab…" (share.ts).
 */
import { JupyterFrontEndPlugin } from '@jupyterlab/application';

import { examplesPlugin } from './examples';
import { notebookJobsPlugin } from './notebook-jobs';
import { connectionLostPlugin, sessionPlugin } from './session';
import { sharePlugin } from './share';

const plugins: JupyterFrontEndPlugin<unknown>[] = [
  examplesPlugin,
  sessionPlugin,
  connectionLostPlugin,
  notebookJobsPlugin,
  sharePlugin
];

export default plugins;
