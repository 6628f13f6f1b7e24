/*
 * A Launcher card, "Example notebooks", opening ~/examples (copied there by the job on a first
 * start) with its README.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ILauncher } from '@jupyterlab/launcher';
import { LabIcon } from '@jupyterlab/ui-components';

import { PLUGIN_PREFIX } from './tokens';

const OPEN_EXAMPLES_COMMAND = 'aifactory:open-examples';

/** A notebook with a bar chart; `jp-icon3` lets JupyterLab's themes recolour it. */
const EXAMPLES_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16"><g class="jp-icon3" fill="#616161">' +
  '<path d="M4 3h11l5 5v13H4z" fill-opacity=".15"/><path d="M4 3h11l5 5v13H4V3zm2 2v14h12V9h-4V5H6z"/>' +
  '<rect x="8" y="13" width="2" height="4"/><rect x="11" y="11" width="2" height="6"/>' +
  '<rect x="14" y="9" width="2" height="8"/></g></svg>';

export const examplesPlugin: JupyterFrontEndPlugin<void> = {
  id: `${PLUGIN_PREFIX}:examples`,
  description: "A Launcher card that opens the site's example notebooks (~/examples).",
  autoStart: true,
  optional: [ILauncher],
  activate: (app: JupyterFrontEnd, launcher: ILauncher | null) => {
    const icon = new LabIcon({ name: 'aifactory:examples', svgstr: EXAMPLES_SVG });
    app.commands.addCommand(OPEN_EXAMPLES_COMMAND, {
      label: 'Example notebooks',
      icon,
      caption: 'Open ~/examples: climate analysis with xarray and Dask, widgets, a small AI model',
      execute: async () => {
        await app.commands.execute('filebrowser:go-to-path', { path: '/examples/', showBrowser: true });
        return app.commands.execute('docmanager:open', { path: 'examples/README.md', factory: 'Markdown Preview' });
      }
    });
    // In the first row, after the kernels: what a new user looks for first. The Notebook row
    // shows a kernel's logo (kernelIconUrl), or else the label's first letter ("E").
    const logo =
      'data:image/svg+xml;charset=utf-8,' + encodeURIComponent(EXAMPLES_SVG.replace('width="16"', 'width="52"'));
    launcher?.add({ command: OPEN_EXAMPLES_COMMAND, category: 'Notebook', rank: 1000, kernelIconUrl: logo });
  }
};
