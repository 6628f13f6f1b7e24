/*
 * AI Factory Workbench's JupyterLab extension, written by hand (no build step, no npm
 * packages): a module-federation container as JupyterLab loads prebuilt extensions
 * (window._JUPYTERLAB[name] with init(shareScope) and get(module)).  It takes JupyterLab's
 * own modules from the share scope, so its plugins use the very tokens JupyterLab uses.
 *
 * Plugins:
 *  - examples: a Launcher card, "Example notebooks", opening ~/examples (copied there by the
 *    job on a first start) with its README;
 *  - session:  the job's time left in the status bar (from the server's aifactory/session,
 *    which asks squeue), warnings at the site's minutes before the walltime ends, a save of
 *    every open notebook when SLURM signals the end, a notice with "Start again" when the
 *    job has ended, and the Dask panel pointed at a cluster started in this job;
 *  - notebook-jobs: "Run as Batch Job…" on a notebook (its context menu, the Run menu, the
 *    palette), with the resources asked for in a dialog, and a side panel of the user's
 *    notebook jobs with their state and output (the server's aifactory/notebook-jobs);
 *  - share: "Share This JupyterLab…" opens the hub's share page (the collaboration
 *    extension's "Generate a Shared Link" asked the hub from this origin and failed on CORS;
 *    it is disabled in page_config.json).
 */
(function () {
  "use strict";
  var NAME = "@aifactory/workbench";
  var MODULES = ["@jupyterlab/launcher", "@jupyterlab/statusbar", "@jupyterlab/apputils", "@lumino/widgets",
                 "@jupyterlab/coreutils", "@jupyterlab/services", "@jupyterlab/ui-components",
                 "@jupyterlab/application", "@jupyterlab/filebrowser", "@jupyterlab/notebook",
                 "@jupyterlab/mainmenu"];
  var EXAMPLES_ICON = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16"><g class="jp-icon3" fill="#616161">' +
    '<path d="M4 3h11l5 5v13H4z" fill-opacity=".15"/><path d="M4 3h11l5 5v13H4V3zm2 2v14h12V9h-4V5H6z"/>' +
    '<rect x="8" y="13" width="2" height="4"/><rect x="11" y="11" width="2" height="6"/><rect x="14" y="9" width="2" height="8"/></g></svg>';
  var POLL_MS = 10000;
  var scope = null;

  function compareVersions(a, b) {
    var x = a.split(/[.+-]/).map(Number), y = b.split(/[.+-]/).map(Number);
    for (var i = 0; i < Math.max(x.length, y.length); i++) {
      var d = (x[i] || 0) - (y[i] || 0);
      if (d) return d;
    }
    return 0;
  }

  function shared(name) {
    var versions = scope && scope[name];
    if (!versions) return Promise.reject(new Error(NAME + ": JupyterLab shares no " + name));
    var entry = versions[Object.keys(versions).sort(compareVersions).pop()];
    entry.loaded = 1;
    return Promise.resolve(entry.get()).then(function (factory) { return factory(); });
  }

  function duration(seconds) {
    var m = Math.max(0, Math.round(seconds / 60)), h = Math.floor(m / 60);
    if (h) return h + " h" + (m % 60 ? " " + (m % 60) + " min" : "");
    return m ? m + " min" : "under a minute";
  }

  function examplesPlugin(lab) {
    return {
      id: NAME + ":examples",
      description: "A Launcher card that opens the site's example notebooks (~/examples).",
      autoStart: true,
      optional: [lab.launcher.ILauncher],
      activate: function (app, launcher) {
        var icon = new lab.ui.LabIcon({ name: "aifactory:examples", svgstr: EXAMPLES_ICON });
        app.commands.addCommand("aifactory:open-examples", {
          label: "Example notebooks",
          icon: icon,
          caption: "Open ~/examples: climate analysis with xarray and Dask, widgets, a small AI model",
          execute: function () {
            return app.commands.execute("filebrowser:go-to-path", { path: "/examples/", showBrowser: true })
              .then(function () {
                return app.commands.execute("docmanager:open", { path: "examples/README.md", factory: "Markdown Preview" });
              });
          }
        });
        // In the first row, after the kernels: what a new user looks for first.
        // The Notebook row shows a kernel's logo (kernelIconUrl), or else the label's first letter ("E").
        var logo = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(EXAMPLES_ICON.replace('width="16"', 'width="52"'));
        if (launcher) launcher.add({ command: "aifactory:open-examples", category: "Notebook", rank: 1000,
                                     kernelIconUrl: logo });
      }
    };
  }

  // Instead of JupyterHub's "Server unavailable or unreachable ... restart it?" dialog (its
  // plugin is disabled in page_config.json): the job's end, in words, and "Start again".
  function connectionLostPlugin(lab, session) {
    return {
      id: NAME + ":connectionlost",
      description: "When the server is gone, says why (the job ended, or a share was revoked) and leads to the hub.",
      autoStart: true,
      provides: lab.application.IConnectionLost,
      activate: function () {
        return function () {
          if (session.ended) session.ended();
          return Promise.resolve();
        };
      }
    };
  }

  function sessionPlugin(lab, session) {
    return {
      id: NAME + ":session",
      description: "The SLURM job's time left, warnings and a save before its end, and its Dask dashboard.",
      autoStart: true,
      optional: [lab.statusbar.IStatusBar],
      activate: function (app, statusBar) {
        var Notification = lab.apputils.Notification;
        var url = lab.coreutils.URLExt.join(lab.coreutils.PageConfig.getBaseUrl(), "aifactory/session");
        var settings = lab.services.ServerConnection.makeSettings();
        var item = new lab.widgets.Widget();
        item.addClass("aifw-session-status");
        item.node.setAttribute("role", "status");
        item.node.textContent = "";
        var style = document.createElement("style");
        style.textContent = ".aifw-session-status{padding:0 6px;line-height:24px}" +
          ".aifw-session-status.aifw-ending{background:var(--jp-warn-color0);color:var(--jp-ui-inverse-font-color0);font-weight:600}" +
          ".aifw-session-status.aifw-ended{background:var(--jp-error-color0);color:var(--jp-ui-inverse-font-color0)}";
        document.head.appendChild(style);
        if (statusBar) statusBar.registerStatusItem(NAME + ":session", { item: item, align: "left", rank: 1000 });

        var last = null, fetchedAt = 0, warned = {}, saves = null, dashboard = "", failures = 0, ended = false;

        function secondsLeft() {
          if (!last || last.seconds_left === null) return null;
          return Math.max(0, last.seconds_left - (Date.now() - fetchedAt) / 1000);
        }

        function show() {
          var left = secondsLeft();
          if (ended || !last || !last.job_id) return;
          var where = last.node ? " on " + last.node : "";
          item.node.textContent = "Job " + last.job_id + where + (left === null ? "" : " \u00b7 " + duration(left) + " left");
          item.node.title = "SLURM job " + last.job_id + ": partition " + (last.partition || "?") + ", account " +
            (last.account || "?") + ", " + (last.cpus || "?") + " cores, " + (last.memory || "?") + " memory" +
            (last.gres ? ", " + last.gres : "") + ". Its walltime ends in " + (left === null ? "?" : duration(left)) + ".";
          var lowest = Math.min.apply(null, last.warn_minutes.length ? last.warn_minutes : [0]);
          item.toggleClass("aifw-ending", left !== null && left <= lowest * 60);
          if (left === null) return;
          // One warning per threshold crossed; opened late, only the nearest one.
          var crossed = last.warn_minutes.filter(function (m) { return left <= m * 60 && !warned[m]; });
          if (crossed.length) {
            crossed.forEach(function (m) { warned[m] = true; });
            var save = last.save_before_end ? " Every open notebook is saved " + duration(last.save_before_end) +
              " before the end." : "";
            Notification.warning("Your JupyterLab job ends in " + duration(left) + ", when its walltime runs out." +
              save + " Save your work now; start a new session from the hub to go on.", {
                autoClose: false,
                actions: [{ label: "Save all now", callback: function () { app.commands.execute("docmanager:save-all"); } }]
              });
          }
        }

        function jobEnded() {
          if (ended || !last || !last.job_id) return;
          ended = true;
          var timeUp = last && last.seconds_left !== null && secondsLeft() < 60;
          item.removeClass("aifw-ending");
          item.addClass("aifw-ended");
          item.node.textContent = "Job ended";
          var home = (last && last.hub_home) || "/hub/home";
          Notification.error("Your JupyterLab job has ended" + (timeUp ? ": its walltime ran out." : ".") +
            " What you saved is in your home folder. The hub says why and starts it again with the same settings.", {
              autoClose: false,
              actions: [{ label: "Start again", callback: function () { window.location.href = home; } }]
            });
        }

        // A 403 from a server that still answers: the job runs, but this person's access ended
        // (its owner stopped sharing it, or the sign-in expired), not the job.
        function accessEnded() {
          if (ended) return;
          ended = true;
          item.removeClass("aifw-ending");
          item.addClass("aifw-ended");
          item.node.textContent = "Access ended";
          var config = lab.coreutils.PageConfig;
          var owner = config.getOption("hubServerUser"), me = config.getOption("hubUser");
          var home = lab.coreutils.URLExt.join(config.getOption("hubHost") || "", config.getOption("hubPrefix") || "/hub/", "home");
          var why = owner && me && owner !== me
            ? owner + " stopped sharing this JupyterLab with you. Its job still runs; what you saved stays in " +
              owner + "'s files. Ask " + owner + " to share it again if you need it."
            : "Your sign-in to this JupyterLab has ended. Sign in again from the hub.";
          Notification.error(why, {
            autoClose: false,
            actions: [{ label: "Go to your home page", callback: function () { window.location.href = home; } }]
          });
        }

        // Why the server stopped answering: one more question tells a revoked share from an ended job.
        function gone() {
          if (ended) return;
          lab.services.ServerConnection.makeRequest(url, {}, settings).then(function (response) {
            if (response.status === 403) accessEnded(); else jobEnded();
          }).catch(jobEnded);
        }

        function poll() {
          if (ended) return;
          lab.services.ServerConnection.makeRequest(url, {}, settings).then(function (response) {
            if (response.status === 403) { accessEnded(); return null; }
            if (!response.ok) throw new Error("status " + response.status);
            return response.json();
          }).then(function (data) {
            if (data === null) return;
            failures = 0;
            last = data;
            fetchedAt = Date.now();
            if (!data.job_id) { item.node.textContent = ""; return; }
            if (saves !== null && data.save_requests > saves) {
              app.commands.execute("docmanager:save-all").then(function () {
                Notification.info("Your JupyterLab job ends in " + duration(secondsLeft() || 0) +
                  ": every open notebook was saved.", { autoClose: false });
              });
            }
            saves = data.save_requests;
            if (data.dashboard && data.dashboard !== dashboard && app.commands.hasCommand("dask:populate-dashboard-url")) {
              dashboard = data.dashboard;
              app.commands.execute("dask:populate-dashboard-url", { url: data.dashboard });
            }
            show();
          }).catch(function () {
            // The server is gone (the job ended) or unreachable: twice in a row, say so.
            failures += 1;
            if (last && (failures >= 2 || secondsLeft() === 0)) jobEnded();
          });
        }
        session.ended = gone;
        poll();
        setInterval(poll, POLL_MS);
        setInterval(show, 15000);
      }
    };
  }


  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }

  function notebookJobsPlugin(lab) {
    return {
      id: NAME + ":notebook-jobs",
      description: "Run a notebook as a SLURM batch job, and follow its notebook jobs in a side panel.",
      autoStart: true,
      optional: [lab.filebrowser.IDefaultFileBrowser, lab.notebook.INotebookTracker, lab.mainmenu.IMainMenu,
                 lab.apputils.ICommandPalette],
      activate: function (app, browser, notebooks, mainMenu, palette) {
        var apputils = lab.apputils, Notification = apputils.Notification;
        var settings = lab.services.ServerConnection.makeSettings();
        var url = lab.coreutils.URLExt.join(settings.baseUrl, "aifactory/notebook-jobs");
        var request = function (init) {
          return lab.services.ServerConnection.makeRequest(url, init || {}, settings).then(function (r) {
            return r.json().catch(function () { return {}; }).then(function (body) {
              if (!r.ok) throw new Error(body.message || body.reason || ("the server answered " + r.status));
              return body;
            });
          });
        };

        var panel = new lab.widgets.Widget();
        panel.id = "aifw-notebook-jobs";
        panel.addClass("aifw-notebook-jobs");
        panel.title.icon = lab.ui.listIcon;
        panel.title.caption = "Notebook jobs";
        panel.node.setAttribute("role", "region");
        panel.node.setAttribute("aria-label", "Notebook jobs");
        var style = document.createElement("style");
        style.textContent = ".aifw-notebook-jobs{padding:8px;overflow:auto;background:var(--jp-layout-color1)}" +
          ".aifw-notebook-jobs li{margin:4px 0}.aifw-job-state{font-weight:600}" +
          ".aifw-batch-form label{display:block;margin-top:6px}.aifw-batch-form input{width:100%}";
        document.head.appendChild(style);
        app.shell.add(panel, "left", { rank: 650 });

        function refresh() {
          return request().then(function (body) {
            panel.node.replaceChildren(el("h2", "Notebook jobs", "jp-text-truncated"));
            if (!body.jobs.length) {
              panel.node.append(el("p", "None in the last week. Right-click a notebook, or use Run › Run as Batch Job…, " +
                                        "to run it as a SLURM job of its own that outlives this session."));
              return body;
            }
            var list = el("ul");
            body.jobs.forEach(function (job) {
              var item = el("li");
              item.dataset.job = job.job;
              item.append(el("span", job.state, "aifw-job-state"), " job " + job.job + ": " +
                          (job.notebook_path || job.notebook) + (job.why && job.why !== job.state ? " (" + job.why + ")" : "") + " ");
              var button = function (label, cls, path, factory) {
                var b = el("button", label, "jp-mod-styled " + cls);
                b.type = "button";
                b.addEventListener("click", function () {
                  // A file moved or deleted since: say so (JupyterLab alone shows nothing).
                  app.serviceManager.contents.get(path, { content: false }).then(function () {
                    return app.commands.execute("docmanager:open", { path: path, factory: factory });
                  }).catch(function () { Notification.warning(path + " is no longer there: it was moved or deleted."); });
                });
                return b;
              };
              // The executed notebook once the job has ended; its log as soon as it runs.
              if ((job.state === "done" || job.state === "failed") && job.result_path)
                item.append(button("Open result", "jp-mod-accept aifw-open-result", job.result_path), " ");
              if (job.state !== "queued" && job.log_path) item.append(button("Log", "aifw-open-log", job.log_path, "Editor"));
              list.append(item);
            });
            panel.node.append(list);
            return body;
          }).catch(function (e) { panel.node.replaceChildren(el("p", "Notebook jobs are not available: " + e.message)); });
        }
        setInterval(function () { if (panel.isVisible) refresh(); }, 15000);
        refresh();

        function selectedNotebook(args) {
          if (args && args.path) return args.path;
          var current = app.shell.currentWidget;
          if (notebooks && notebooks.currentWidget && current === notebooks.currentWidget) return notebooks.currentWidget.context.path;
          var item = browser && Array.from(browser.selectedItems())[0];
          return item && item.type === "notebook" ? item.path : "";
        }

        app.commands.addCommand("aifactory:run-as-batch-job", {
          label: "Run as Batch Job…",
          caption: "Run this notebook headless as a SLURM job of its own, with the resources you choose",
          isEnabled: function () { return !!selectedNotebook(); },
          execute: function (args) {
            var path = selectedNotebook(args);
            if (!path) return;
            return request().then(function (body) {
              var d = body.defaults, form = el("div", undefined, "aifw-batch-form");  // a div: Enter must not submit a page form
              form.append(el("p", path + " runs headless with its own kernel; the executed notebook and its log land beside it."));
              [["partition", "Partition (empty: the default)", d.partition], ["account", "Account (empty: your default)", d.account],
               ["cpus", "Cores", String(d.cpus)], ["memory", "Memory (e.g. 4G)", d.memory],
               ["walltime", "Walltime (HH:MM:SS)", d.walltime]].forEach(function (f) {
                var label = el("label", f[1]), input = el("input");
                input.name = f[0]; input.value = f[2]; input.id = "aifw-batch-" + f[0];
                label.htmlFor = input.id;
                form.append(label, input);
              });
              var body_ = new lab.widgets.Widget({ node: form });
              return apputils.showDialog({ title: "Run as batch job", body: body_,
                buttons: [apputils.Dialog.cancelButton(), apputils.Dialog.okButton({ label: "Submit job" })] })
                .then(function (result) {
                  if (!result.button.accept) return;
                  var values = { path: path };
                  Array.from(form.querySelectorAll("input")).forEach(function (i) { values[i.name] = i.value.trim(); });
                  values.cpus = Number(values.cpus);
                  return request({ method: "POST", body: JSON.stringify(values) }).then(function (made) {
                    Notification.success("Job " + made.job + " runs " + path + ": its result will be " + made.result_path +
                                         ". Follow it in the Notebook jobs panel or on the hub's home page.", { autoClose: 8000 });
                    app.shell.activateById(panel.id);
                    setTimeout(refresh, 3000);  // accounting lists a new job within a few seconds
                    return refresh();
                  }).catch(function (e) { Notification.error("Not submitted: " + e.message, { autoClose: false }); });
                });
            }).catch(function (e) { Notification.error("Notebook jobs are not available: " + e.message, { autoClose: false }); });
          }
        });
        app.contextMenu.addItem({ command: "aifactory:run-as-batch-job", selector: '.jp-DirListing-item[data-file-type="notebook"]', rank: 12 });
        app.contextMenu.addItem({ command: "aifactory:run-as-batch-job", selector: ".jp-Notebook", rank: 100 });
        if (mainMenu) mainMenu.runMenu.addGroup([{ command: "aifactory:run-as-batch-job" }], 1000);
        if (palette) palette.addItem({ command: "aifactory:run-as-batch-job", category: "Notebook Operations" });
      }
    };
  }

  function sharePlugin(lab) {
    return {
      id: NAME + ":share",
      description: "Share this JupyterLab from the hub's share page.",
      autoStart: true,
      optional: [lab.mainmenu.IMainMenu, lab.apputils.ICommandPalette],
      activate: function (app, mainMenu, palette) {
        var config = lab.coreutils.PageConfig;
        app.commands.addCommand("aifactory:share", {
          label: "Share This JupyterLab…",
          caption: "Name a colleague, or make a link that lets one person in (the hub's share page)",
          execute: function () {
            window.open(lab.coreutils.URLExt.join(config.getOption("hubHost") || "", config.getOption("hubPrefix") || "/hub/", "share"), "_blank");
          }
        });
        if (mainMenu) mainMenu.fileMenu.addGroup([{ command: "aifactory:share" }], 90);
        if (palette) palette.addItem({ command: "aifactory:share", category: "Server" });
      }
    };
  }

  var container = {
    init: function (shareScope) { scope = shareScope; },
    get: function (module) {
      if (module !== "./extension") return Promise.reject(new Error(NAME + " has no module " + module));
      return Promise.all(MODULES.map(shared)).then(function (m) {
        var lab = { launcher: m[0], statusbar: m[1], apputils: m[2], widgets: m[3], coreutils: m[4], services: m[5],
                    ui: m[6], application: m[7], filebrowser: m[8], notebook: m[9], mainmenu: m[10] };
        var session = { ended: null };  // set by the session plugin: shows the notice of the job's end
        var plugins = [examplesPlugin(lab), sessionPlugin(lab, session), connectionLostPlugin(lab, session),
                       notebookJobsPlugin(lab), sharePlugin(lab)];
        return function () { return { __esModule: true, default: plugins }; };
      });
    }
  };
  window._JUPYTERLAB = window._JUPYTERLAB || {};
  window._JUPYTERLAB[NAME] = container;
})();
