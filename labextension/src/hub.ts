import { PageConfig, URLExt } from '@jupyterlab/coreutils';

/**
 * A page of the hub, on the hub's own origin (JupyterHub gives the page both parts): this
 * JupyterLab runs on the user's own origin, so a relative link would miss the hub.
 */
export function hubPage(page: string): string {
  return URLExt.join(PageConfig.getOption('hubHost') || '', PageConfig.getOption('hubPrefix') || '/hub/', page);
}
