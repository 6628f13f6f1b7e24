/*
 * "Share This JupyterLab…" opens the hub's share page (the collaboration extension's
 * "Generate a Shared Link" asked the hub from this origin and failed on CORS; it is disabled in
 * page_config.json).
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { IMainMenu } from '@jupyterlab/mainmenu';

import { hubPage } from './hub';
import { PLUGIN_PREFIX } from './tokens';

const SHARE_COMMAND = 'aifactory:share';

export const sharePlugin: JupyterFrontEndPlugin<void> = {
  id: `${PLUGIN_PREFIX}:share`,
  description: "Share this JupyterLab from the hub's share page.",
  autoStart: true,
  optional: [IMainMenu, ICommandPalette],
  activate: (app: JupyterFrontEnd, mainMenu: IMainMenu | null, palette: ICommandPalette | null) => {
    app.commands.addCommand(SHARE_COMMAND, {
      label: 'Share This JupyterLab…',
      caption: "Name a colleague, or make a link that lets one person in (the hub's share page)",
      execute: () => {
        window.open(hubPage('share'), '_blank');
      }
    });
    mainMenu?.fileMenu.addGroup([{ command: SHARE_COMMAND }], 90);
    palette?.addItem({ command: SHARE_COMMAND, category: 'Server' });
  }
};
