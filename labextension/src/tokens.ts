/** The extension's npm name: its plugins' ids start with it. */
export const PLUGIN_PREFIX = '@aifactory/workbench';
